"""The inference pipeline as it was before its stages moved to torch (numpy and OpenCV on the host), kept
unchanged as the reference the torch pipeline must agree with (tests/engine/test_inference_pipeline.py).

Inference as a fixed pipeline: preprocess -> forward -> postprocess, batched over slices.

* preprocess: normalise (the checkpoint's scheme), stack neighbouring slices for 2.5-D models, resize to
  the working size, pad to a multiple of ``2 ** depth`` (reflect);
* forward: CUDA/MPS with torch (AMP and channels_last on CUDA); CPU with ONNX Runtime when installed
  (fastest here, see docs/engine.md), else torch channels_last; ``inference_mode``; optional flip
  test-time augmentation; slices larger than ``tile_limit`` go through a sliding window with Gaussian
  weighting;
* postprocess: softmax probabilities resized back to the input grid (bilinear), argmax, class index ->
  label value; a whole volume also gets the model's post-processing (engine/postprocess.py).
Results stream per batch (:meth:`Predictor.run`) so a GUI can fill the overlay as they arrive. A model
trained on coronal or sagittal planes (``Preprocessing.axis``) segments every plane along its axis; the
axial slices asked for then come in one batch at the end (progress batches before it hold no slice).
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core.ranking import uncertainty as margin_uncertainty
from unetgui.engine import postprocess as component_rules
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.data import context_stack, pad_to_multiple
from unetgui.engine.device import amp_dtype, configure_threads, describe, pick_device
from unetgui.engine.preprocessing import resize_slices

RUNTIMES = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class SliceBatch:
    """One finished batch: label values and quantised probabilities (0..255 = 0..1) per class."""

    slices: tuple[int, ...]
    labels: np.ndarray  # (n, y, x) uint8 label values
    probabilities: np.ndarray  # (n, classes, y, x) uint8
    done: int
    total: int
    eta: float  # seconds
    uncertainty: np.ndarray | None = None  # (n, y, x) uint8: 1 - margin of the two top classes (core.ranking)


@dataclass
class Prediction:
    labels: np.ndarray  # (z, y, x) uint8; slices not predicted are 0
    probabilities: np.ndarray | None  # (z, classes, y, x) uint8, or None when not kept
    seconds: float
    device: str
    uncertainty: np.ndarray | None = None  # (z, y, x) uint8 0..255 (see core.ranking.uncertainty)


class Predictor:
    """Segment slices with a trained model (see the module docstring for the stages)."""

    def __init__(self, checkpoint: Checkpoint, device: str = "auto", runtime: str = "auto", tta: bool = False,
                 batch_size: int | None = None, threads: int | None = None, tile_limit: int = 1024) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}")
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        self.pre = checkpoint.preprocessing
        self.device = pick_device(device)
        if self.device.type == "cpu":
            configure_threads(threads)
        self.tta, self.tile_limit = tta, tile_limit
        self.batch_size = batch_size or (16 if self.device.type == "cuda" else 2)
        self._values = np.asarray([0, *checkpoint.labels.values], np.uint8)
        self.model = checkpoint.build(self.device)
        self._amp = amp_dtype(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self._session = None
        if self.device.type == "cpu" and runtime in ("auto", "onnx"):
            self._session = self._onnx_session(threads, required=runtime == "onnx")
        if self._session is None and self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.runtime = "onnxruntime" if self._session is not None else "torch"
        self.device_name = describe(self.device) + f", {self.runtime}"
        self.notes: list[str] = []  # what had to change on the way (out-of-memory fallbacks)

    def _onnx_session(self, threads: int | None, required: bool):
        try:
            import onnxruntime as ort
        except ImportError:
            if required:
                raise
            return None
        x = torch.zeros(1, self.config.in_channels, self.config.multiple * 4, self.config.multiple * 4)
        buffer = io.BytesIO()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(self.model, (x,), buffer, input_names=["x"], output_names=["logits"],
                                  dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "logits": {0: "b", 2: "h", 3: "w"}},
                                  dynamo=False)
        except Exception:
            if required:
                raise
            return None  # an exporter problem must not stop segmentation: torch runs instead
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    # -- stages ----------------------------------------------------------------------------------
    def preprocess(self, voxels: np.ndarray, slices: list[int], stats: tuple) -> np.ndarray:
        """``(n, channels, h, w)`` float32 at the working size (not yet padded)."""
        c = self.config.context
        target = self.pre.working_shape(voxels.shape[1:])
        stacks = []
        for z in slices:
            planes = self.pre.normalize(context_stack(voxels, z, c), stats)
            stacks.append(resize_slices(planes, target))
        return np.stack(stacks)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(n, classes, h, w)`` float32 for unpadded working-size input."""
        if max(x.shape[-2:]) > self.tile_limit:
            return self._forward_tiled(x)
        return self._forward_whole(x)

    def _forward_whole(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, self.config.multiple)
        probs = self._probabilities(padded)
        if self.tta:
            for axes in ((3,), (2,), (2, 3)):
                flipped = np.ascontiguousarray(np.flip(padded, axes))
                probs += np.flip(self._probabilities(flipped), axes)
            probs /= 4
        return probs[:, :, :h, :w]

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        if self._session is not None:
            logits = self._session.run(None, {"x": np.ascontiguousarray(x, np.float32)})[0]
            logits -= logits.max(axis=1, keepdims=True)
            e = np.exp(logits)
            return e / e.sum(axis=1, keepdims=True)
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            if self.device.type != "mps":
                t = t.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self._amp or torch.float32, enabled=self._amp is not None):
                logits = self.model(t)
            return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def _forward_tiled(self, x: np.ndarray) -> np.ndarray:
        """Sliding window (tiles of ``tile_limit // 2``, half overlap), Gaussian-weighted blending."""
        n, _, h, w = x.shape
        tile = max(self.config.multiple, (self.tile_limit // 2) // self.config.multiple * self.config.multiple)
        step = tile // 2
        sigma = tile / 8
        g = np.exp(-((np.arange(tile) - (tile - 1) / 2) ** 2) / (2 * sigma**2))
        weight = np.maximum(np.outer(g, g), 1e-3).astype(np.float32)
        out = np.zeros((n, self.config.classes, h, w), np.float32)
        norm = np.zeros((h, w), np.float32)
        ys = sorted({*range(0, max(h - tile, 0) + 1, step), max(h - tile, 0)})
        xs = sorted({*range(0, max(w - tile, 0) + 1, step), max(w - tile, 0)})
        for y0 in ys:
            for x0 in xs:
                probs = self._forward_whole(x[:, :, y0:y0 + tile, x0:x0 + tile])
                th, tw = probs.shape[-2:]
                out[:, :, y0:y0 + th, x0:x0 + tw] += probs * weight[:th, :tw]
                norm[y0:y0 + th, x0:x0 + tw] += weight[:th, :tw]
        return out / norm

    def postprocess(self, probs: np.ndarray, shape_yx: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Label values ``(n, y, x)`` uint8 and probabilities ``(n, classes, y, x)`` uint8 on the input grid."""
        n, c = probs.shape[:2]
        if probs.shape[-2:] != tuple(shape_yx):
            probs = resize_slices(probs.reshape(n * c, *probs.shape[-2:]), shape_yx).reshape(n, c, *shape_yx)
        labels = self._values[probs.argmax(axis=1)]
        quantised = np.clip(probs * 255 + 0.5, 0, 255).astype(np.uint8)
        return labels, quantised

    # -- driving ---------------------------------------------------------------------------------
    def run(self, voxels: np.ndarray, slices: list[int] | None = None,
            cancel: CancelToken | None = None) -> Iterator[SliceBatch]:
        """Segment axial ``slices`` (default all) of ``voxels`` ``(z, y, x)``; yields each finished batch."""
        if self.pre.axis:
            yield from self._run_across(voxels, slices, cancel)
        else:
            yield from self._run_planes(voxels, slices, cancel)

    def _run_across(self, voxels: np.ndarray, slices: list[int] | None, cancel: CancelToken | None) -> Iterator[SliceBatch]:
        """A model of coronal or sagittal planes: all its planes, then the axial ``slices`` in one batch."""
        axis = self.pre.axis
        planes = np.moveaxis(voxels, axis, 0)
        labels = np.zeros(planes.shape, np.uint8)
        probs = np.zeros((planes.shape[0], self.config.classes, *planes.shape[1:]), np.uint8)
        empty = np.zeros((0, *voxels.shape[1:]), np.uint8)
        for batch in self._run_planes(planes, None, cancel):
            labels[list(batch.slices)] = batch.labels
            probs[list(batch.slices)] = batch.probabilities
            if batch.done < batch.total:
                yield SliceBatch((), empty, np.zeros((0, self.config.classes, *voxels.shape[1:]), np.uint8),
                                 batch.done, batch.total, batch.eta, empty)
        order = list(range(voxels.shape[0])) if slices is None else list(slices)
        labels = np.moveaxis(labels, 0, axis)[order]
        # (plane, class, rows, columns) -> (z, class, y, x)
        probs = np.moveaxis(np.moveaxis(np.moveaxis(probs, 1, -1), 0, axis), -1, 1)[order]
        total = planes.shape[0]
        yield SliceBatch(tuple(order), np.ascontiguousarray(labels), np.ascontiguousarray(probs), total, total, 0.0,
                         margin_uncertainty(probs))

    def _run_planes(self, voxels: np.ndarray, slices: list[int] | None,
                    cancel: CancelToken | None) -> Iterator[SliceBatch]:
        """Segment ``slices`` (default all) along the first axis of ``voxels``; yields each finished batch."""
        order = list(range(voxels.shape[0])) if slices is None else list(slices)
        stats = self.pre.volume_stats(voxels)
        start = time.monotonic()
        done = 0
        while done < len(order):
            check(cancel)
            batch = order[done:done + self.batch_size]
            try:
                probs = self.forward(self.preprocess(voxels, batch, stats))
            except torch.cuda.OutOfMemoryError:
                self._out_of_memory()
                continue  # the same slices again, with a smaller batch or on the CPU
            labels, quantised = self.postprocess(probs, voxels.shape[1:])
            done += len(batch)
            elapsed = time.monotonic() - start
            yield SliceBatch(tuple(batch), labels, quantised, done, len(order), elapsed / done * (len(order) - done),
                             margin_uncertainty(quantised))  # from the same probabilities: no extra pass

    def _out_of_memory(self) -> None:
        """GPU out of memory: halve the batch; at one slice, continue on the CPU (noted in ``notes``)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size > 1:
            self.batch_size //= 2
            self.notes.append(f"GPU out of memory: batch size reduced to {self.batch_size}")
            return
        if self.device.type == "cpu":
            raise MemoryError("out of memory while segmenting one slice on the CPU")
        self.device = torch.device("cpu")
        self.model = self.model.cpu().to(memory_format=torch.channels_last)
        self._amp = None
        self.batch_size = 2
        self.runtime = "torch"
        self.device_name = describe(self.device) + ", torch (GPU out of memory)"
        self.notes.append("GPU out of memory even for one slice: segmenting on the CPU")

    def predict(self, voxels: np.ndarray, slices: list[int] | None = None, cancel: CancelToken | None = None,
                progress: ProgressFn | None = None, keep_probabilities: bool = True, postprocess: bool = True) -> Prediction:
        """Segment and collect the whole result; a whole volume gets the model's post-processing unless
        ``postprocess`` is False."""
        start = time.monotonic()
        labels = np.zeros(voxels.shape, np.uint8)
        probs = np.zeros((voxels.shape[0], self.config.classes, *voxels.shape[1:]), np.uint8) if keep_probabilities else None
        uncert = np.zeros(voxels.shape, np.uint8)
        for batch in self.run(voxels, slices, cancel):
            labels[list(batch.slices)] = batch.labels
            uncert[list(batch.slices)] = batch.uncertainty
            if probs is not None:
                probs[list(batch.slices)] = batch.probabilities
            report(progress, batch.done, batch.total, f"segmenting: ETA {batch.eta:.0f} s")
        if postprocess and (slices is None or len(set(slices)) == voxels.shape[0]):  # a whole volume
            labels = component_rules.apply(labels, self.checkpoint.info.get("postprocessing"))
        return Prediction(labels, probs, time.monotonic() - start, self.device_name, uncert)
