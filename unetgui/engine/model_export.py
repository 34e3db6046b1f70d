"""A trained model as ONNX, for tools that do not run unetgui (docs/models.md says how to run it).

The graph is the U-Net alone: input ``image`` ``(batch, in_channels, height, width)`` float32, already
normalised, context-stacked and padded (height and width multiples of ``2 ** depth``); output ``logits``
``(batch, classes, height, width)``. Batch, height and width are dynamic. What happens around the graph
(preprocessing, class index -> label value, post-processing) travels in the file's ``metadata_props`` as
JSON, with a plain-text ``unetgui.usage`` that lists the steps.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import torch

from unetgui import __version__
from unetgui.core import atomic
from unetgui.core.errors import FormatError
from unetgui.engine.checkpoint import Checkpoint

OPSET = 17
FORMAT = "unetgui-onnx"
FORMAT_VERSION = 1
INPUT, OUTPUT = "image", "logits"

USAGE = """\
unetgui U-Net, exported as ONNX (full description: docs/models.md of unetgui).
Input 'image' (batch, in_channels, H, W) float32; output 'logits' (batch, classes, H, W).
0. planes: unetgui.preprocessing axis 0 segments the axial slices of a volume (z, y, x); axis 1 the
   coronal planes, axis 2 the sagittal ones: take planes = numpy.moveaxis(volume, axis, 0), run 1-8 on
   them as 'slices', and move the labels back (numpy.moveaxis(labels, 0, axis)) before 9.
For each slice z of a volume (z, y, x) in its original units (Hounsfield units for CT):
1. statistics (lo, hi, mean, std): unetgui.preprocessing mode 'ct': window and mean/std stored there;
   mode 'per_volume': 0.5/99.5 percentiles of the volume (a random sample of up to 1e6 voxels,
   numpy default_rng(0)), then mean/std of the sample clipped to them (std at least 1e-6).
2. context: slices z-c..z+c (c = unetgui.architecture context; indices clipped to the volume) as channels.
3. normalise: clip to [lo, hi], subtract mean, multiply by 1/std (float32).
4. working size: if working_size is set, resize each channel so that the longer side is working_size
   (OpenCV: INTER_AREA when shrinking, INTER_LINEAR when enlarging).
5. pad height and width at their ends to multiples of 2**depth (reflect; edge when the slice is smaller
   than the padding).
6. run; crop the logits back to the unpadded size; softmax over classes.
7. resize the probabilities back to the slice size (as in 4), argmax over classes.
8. class 0 is background (0); class i is label unetgui.labels[i-1].value.
9. whole volumes: for each label in unetgui.postprocessing largest_component keep only its largest 3-D object:
   face-connected, or, when unetgui.postprocessing says "linked": true, with the cross-sections on
   neighbouring slices linked when within ceil(min(slice distance, 10 mm) / pixel size) pixels in-plane (at
   most 64; none when the slice distance is under 1.5 pixels). annotated_object: in the volume the labels
   were drawn on, keep only the objects that reach the drawn structure (engine/postprocess.py).
"""


@dataclass(frozen=True)
class ExportedModel:
    """What was written: the path, its size in bytes, and the largest absolute difference of the ONNX
    logits from torch's on a test input (ONNX Runtime; None when it is not installed)."""

    path: str
    size: int
    max_difference: float | None


def metadata(checkpoint: Checkpoint) -> dict[str, str]:
    """The ``metadata_props`` of the exported file: every value a string (JSON where structured).

    Label names come from files and users: they travel only inside JSON written in ASCII (a control character,
    a line break or a bidirectional override becomes a ``\\u`` escape), so a name cannot put raw control
    characters into the file's metadata, and it reads back exactly (``json.loads``)."""
    config = checkpoint.config
    architecture = {**config.to_json(), "in_channels": config.in_channels, "multiple": config.multiple}

    def text(value) -> str:
        return json.dumps(value, ensure_ascii=True)

    return {
        "unetgui.format": FORMAT,
        "unetgui.format_version": str(FORMAT_VERSION),
        "unetgui.version": __version__,
        "unetgui.architecture": text(architecture),
        "unetgui.preprocessing": text(checkpoint.preprocessing.to_json()),
        "unetgui.labels": text(checkpoint.labels.to_json()),
        "unetgui.postprocessing": text(checkpoint.info.get("postprocessing") or {}),
        "unetgui.usage": USAGE,
    }


def to_onnx(checkpoint: Checkpoint) -> onnx.ModelProto:
    """The model as an ONNX graph (opset 17, legacy TorchScript exporter) with :func:`metadata`."""
    model = checkpoint.build("cpu")
    side = checkpoint.config.multiple * 2
    x = torch.zeros(1, checkpoint.config.in_channels, side, side)
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buffer, input_names=[INPUT], output_names=[OUTPUT], opset_version=OPSET,
                              dynamic_axes={INPUT: axes, OUTPUT: axes}, dynamo=False)
        proto = onnx.load_from_string(buffer.getvalue())
        proto.producer_name, proto.producer_version = "unetgui", __version__
        proto.doc_string = USAGE
        onnx.helper.set_model_props(proto, metadata(checkpoint))
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - the exporter fails in many ways; each is "cannot export"
        raise FormatError(f"the model cannot be exported to ONNX ({type(exc).__name__}: {str(exc)[:300]})") from exc
    return proto


def export_onnx(checkpoint: Checkpoint, path: str, verify: bool = True) -> ExportedModel:
    """Write ``checkpoint`` as ONNX to ``path`` atomically; with ``verify``, run the written graph on a
    test input and report how far its logits are from torch's."""
    proto = to_onnx(checkpoint)
    data = proto.SerializeToString()
    try:
        atomic.write_bytes(path, data)
    except OSError as exc:
        raise FormatError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return ExportedModel(path, len(data), _difference(checkpoint, data) if verify else None)


def _difference(checkpoint: Checkpoint, data: bytes) -> float | None:
    """Largest |ONNX - torch| of the logits on a random input of 2 x in_channels x (2m) x (3m), m the multiple."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    config = checkpoint.config
    x = np.random.default_rng(0).standard_normal((2, config.in_channels, 2 * config.multiple, 3 * config.multiple))
    x = x.astype(np.float32)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    ours = session.run([OUTPUT], {INPUT: x})[0]
    with torch.inference_mode():
        theirs = checkpoint.build("cpu")(torch.from_numpy(x)).numpy()
    return float(np.abs(ours - theirs).max())
