"""`unetgui export-model`: the ONNX file, run by the example of docs/models.md (ONNX Runtime, numpy, OpenCV
for the working size, SciPy for the post-processing; no unetgui code), gives the labels of `unetgui predict`."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import onnx
import pytest
from scipy import ndimage

from conftest import phantom_hu
from engine_fixtures import tiny_checkpoint
from unetgui import cli
from unetgui.core.volume import LabelTable
from unetgui.engine import checkpoint as model_file
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.unet import UNet, UNetConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def _documented_steps() -> dict:
    """The Python example of docs/models.md, run as it stands: its functions by name."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def _nifti(path: Path, voxels: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(voxels.transpose(2, 1, 0), np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    return path


def _export_and_compare(tmp_path: Path, checkpoint: Checkpoint, image: Path) -> tuple[np.ndarray, dict]:
    """Export with the CLI, segment ``image`` with the documented steps and with `unetgui predict`;
    returns the documented result and the file's metadata after asserting both agree."""
    model, onnx_path, predicted = tmp_path / "m.unetgui", tmp_path / "m.onnx", tmp_path / "p.nii.gz"
    model_file.save(checkpoint, str(model))
    assert cli.main(["export-model", "--model", str(model), "--onnx", str(onnx_path)]) == 0
    assert cli.main(["predict", "--model", str(model), "--input", str(image), "--output", str(predicted),
                     "--device", "cpu"]) == 0
    expected = np.asarray(nib.load(predicted).dataobj).transpose(2, 1, 0)
    volume = np.asarray(nib.load(image).dataobj).transpose(2, 1, 0)  # as docs/models.md reads a NIfTI
    ours = _documented_steps()["segment"](str(onnx_path), volume)
    assert ours.shape == expected.shape and np.array_equal(ours, expected)
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    return ours, meta


def test_exported_ct_model_with_a_working_size_segments_like_predict(tmp_path):
    checkpoint = tiny_checkpoint(epochs=3)
    checkpoint.preprocessing = dataclasses.replace(checkpoint.preprocessing, working_size=48)  # resize and pad
    image = _nifti(tmp_path / "ct.nii.gz", phantom_hu((12, 64, 80)))
    labels, meta = _export_and_compare(tmp_path, checkpoint, image)
    assert labels.any() and set(np.unique(labels)) <= {0, 1}
    assert Preprocessing.from_json(json.loads(meta["unetgui.preprocessing"])) == checkpoint.preprocessing
    assert LabelTable.from_json(json.loads(meta["unetgui.labels"])) == checkpoint.labels
    architecture = json.loads(meta["unetgui.architecture"])
    assert (architecture["in_channels"], architecture["multiple"], architecture["classes"]) == (1, 8, 2)
    assert meta["unetgui.version"] and "softmax" in meta["unetgui.usage"]
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (graph.input[0], graph.output[0])]
    assert (graph.input[0].name, graph.output[0].name) == ("image", "logits")
    assert dims == [["batch", 1, "height", "width"], ["batch", 2, "height", "width"]]


@pytest.mark.parametrize("axis", [0, 1])
def test_exported_2_5d_model_with_per_volume_normalisation_and_postprocessing(tmp_path, axis):
    """context=1 (3 channels), MR-like values, sizes not multiples of 4, keep-largest-component on label 1
    (which this random model scatters over hundreds of components); axial and coronal planes (the
    per-volume statistics are drawn from the volume with the model's axis first)."""
    config = UNetConfig(classes=3, depth=2, base=4, context=1)
    import torch

    torch.manual_seed(0)
    checkpoint = Checkpoint.from_model(UNet(config), Preprocessing(axis=axis), LabelTable.from_names("a", "b"),
                                       {"postprocessing": {"largest_component": [1]}})
    rng = np.random.default_rng(1)
    voxels = (phantom_hu((9, 50, 70)) + 1000 + rng.integers(0, 300, (9, 50, 70))).astype(np.int16)
    labels, meta = _export_and_compare(tmp_path, checkpoint, _nifti(tmp_path / "mr.nii.gz", voxels))
    assert ndimage.label(labels == 1)[1] == 1
    assert json.loads(meta["unetgui.architecture"])["in_channels"] == 3
    assert json.loads(meta["unetgui.postprocessing"]) == {"largest_component": [1]}


def test_exported_sagittal_model_segments_its_planes_like_predict(tmp_path):
    """A model of sagittal planes (preprocessing.axis 2): the documented steps slice the volume along x,
    (z, y) planes of 12 x 64 resized to 9 x 48 and padded, and move the labels back to (z, y, x)."""
    checkpoint = tiny_checkpoint(epochs=3)
    checkpoint.preprocessing = dataclasses.replace(checkpoint.preprocessing, axis=2, working_size=48)
    image = _nifti(tmp_path / "ct.nii.gz", phantom_hu((12, 64, 80)))
    labels, meta = _export_and_compare(tmp_path, checkpoint, image)
    assert json.loads(meta["unetgui.preprocessing"])["axis"] == 2
    assert Preprocessing.from_json(json.loads(meta["unetgui.preprocessing"])) == checkpoint.preprocessing
    assert labels.any() and set(np.unique(labels)) <= {0, 1}
    proto = onnx.load(str(tmp_path / "m.onnx"))  # the same file read as an axial model gives other labels
    for prop in proto.metadata_props:
        if prop.key == "unetgui.preprocessing":
            prop.value = json.dumps({**json.loads(prop.value), "axis": 0})
    onnx.save(proto, str(tmp_path / "axial.onnx"))
    volume = np.asarray(nib.load(image).dataobj).transpose(2, 1, 0)
    assert not np.array_equal(_documented_steps()["segment"](str(tmp_path / "axial.onnx"), volume), labels)


def test_bad_paths_are_refused_in_one_line_and_write_nothing(tmp_path, capsys):
    model = tmp_path / "m.unetgui"
    model_file.save(Checkpoint.from_model(UNet(UNetConfig(depth=1, base=2)), Preprocessing(),
                                          LabelTable.from_names("x")), str(model))
    cases = [(["--model", str(model), "--onnx", str(tmp_path / "missing" / "m.onnx")], "folder does not exist"),
             (["--model", str(model), "--onnx", str(tmp_path / "m.txt")], "ending in .onnx"),
             (["--model", str(tmp_path / "none.unetgui"), "--onnx", str(tmp_path / "m.onnx")], "no such model file")]
    for args, message in cases:
        assert cli.main(["export-model", *args]) == 1
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.unetgui"]
