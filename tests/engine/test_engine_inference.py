"""Inference pipeline, checkpoints (safe loading), metrics and augmentation."""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pytest
import torch

from engine_fixtures import FAST, TABLE, TINY, phantom_case
from unetgui.core.errors import FormatError, UnetguiError
from unetgui.core.progress import CancelToken
from unetgui.engine import checkpoint as model_file
from unetgui.engine.augment import AugmentConfig, augment
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.inference import Predictor
from unetgui.engine.metrics import evaluate, evaluate_slices, hd95, label_metrics
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.training import TrainConfig, Trainer
from unetgui.engine.unet import UNet, UNetConfig


@pytest.fixture(scope="module")
def checkpoint() -> Checkpoint:
    *_, pre, case = phantom_case()
    trainer = Trainer([case], TABLE, pre, TrainConfig(**{**FAST.to_json(), "epochs": 3}), TINY)
    for _ in trainer.run():
        pass
    return trainer.best_checkpoint()


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, checkpoint):
    path = str(tmp_path / "m.unetgui")
    model_file.save(checkpoint, path)
    back = model_file.load(path)
    assert back.config == checkpoint.config and back.preprocessing == checkpoint.preprocessing
    assert back.labels == checkpoint.labels and back.info["training"] == checkpoint.info["training"]
    x = torch.randn(2, 1, 40, 56)
    with torch.inference_mode():
        assert torch.equal(checkpoint.build()(x), back.build()(x))
    assert os.listdir(tmp_path) == ["m.unetgui"]  # no temporary file left


def test_pickle_truncated_and_foreign_files_are_refused(tmp_path, checkpoint):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.unetgui"
    evil.write_bytes(pickle.dumps({"weights": Payload()}))
    with pytest.raises(FormatError, match="not a unetgui model file"):
        model_file.load(str(evil))
    torch.save(checkpoint.weights, tmp_path / "torch.pt")  # a plain torch pickle
    with pytest.raises(FormatError):
        model_file.load(str(tmp_path / "torch.pt"))
    good = tmp_path / "good.unetgui"
    model_file.save(checkpoint, str(good))
    (tmp_path / "cut.unetgui").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FormatError, match="damaged"):
        model_file.load(str(tmp_path / "cut.unetgui"))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(FormatError, match="not a unetgui model"):
        model_file.load(str(tmp_path / "foreign.safetensors"))
    with pytest.raises(FormatError, match="no such model file"):
        model_file.load(str(tmp_path / "missing.unetgui"))


def test_onnx_and_torch_runtimes_agree(checkpoint):
    hu, *_ = phantom_case((5, 70, 90))  # not a multiple of 2**depth: padded and cropped back
    a = Predictor(checkpoint, device="cpu", runtime="torch").predict(hu)
    b = Predictor(checkpoint, device="cpu", runtime="onnx").predict(hu)
    assert a.labels.shape == hu.shape and a.probabilities.shape == (5, 2, 70, 90)
    assert np.abs(a.probabilities.astype(int) - b.probabilities.astype(int)).max() <= 2
    assert (a.labels != b.labels).mean() < 1e-3


def test_tiling_tta_and_working_size_keep_the_input_grid(checkpoint):
    hu, truth, *_ = phantom_case((4, 64, 64))
    plain = Predictor(checkpoint, device="cpu", runtime="torch").predict(hu)
    tiled = Predictor(checkpoint, device="cpu", runtime="torch", tile_limit=32).predict(hu)
    assert (plain.labels != tiled.labels).mean() < 0.02
    tta = Predictor(checkpoint, device="cpu", runtime="torch", tta=True).predict(hu, slices=[1, 2])
    assert tta.labels[[0, 3]].max() == 0 and tta.labels[1:3].any()
    from dataclasses import replace

    small = replace(checkpoint, preprocessing=replace(checkpoint.preprocessing, working_size=32))
    down = Predictor(small, device="cpu", runtime="torch").predict(hu)
    assert down.labels.shape == hu.shape
    probs = down.probabilities.astype(int).sum(axis=1)
    assert np.all(np.abs(probs - 255) <= 2)  # probabilities still sum to one after resizing back


def test_results_stream_per_batch_and_cancel(checkpoint):
    hu, *_ = phantom_case((6, 64, 64))
    predictor = Predictor(checkpoint, device="cpu", runtime="torch", batch_size=2)
    batches = list(predictor.run(hu))
    assert [b.slices for b in batches] == [(0, 1), (2, 3), (4, 5)] and batches[-1].done == 6
    token = CancelToken()
    from unetgui.core.errors import Cancelled

    with pytest.raises(Cancelled):
        for _ in predictor.run(hu, cancel=token):
            token.set()


def test_cuda_requested_without_a_gpu_is_a_clear_error(checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UnetguiError, match="no CUDA GPU"):
        Predictor(checkpoint, device="cuda")


@pytest.mark.gpu
def test_cuda_inference_matches_cpu(checkpoint):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    hu, *_ = phantom_case((4, 64, 64))
    cpu = Predictor(checkpoint, device="cpu", runtime="torch").predict(hu)
    gpu = Predictor(checkpoint, device="cuda", compile=False).predict(hu)
    assert (cpu.labels != gpu.labels).mean() < 0.01


def test_metrics_definitions_and_empty_cases():
    a = np.zeros((10, 20, 20), np.uint8)
    a[2:8, 5:15, 5:15] = 1
    b = np.zeros_like(a)
    b[2:8, 6:16, 5:15] = 1  # shifted by one row (1 mm)
    (m,) = evaluate(a, b, (2.0, 1.0, 1.0))
    assert m.dice == pytest.approx(0.9) and m.iou == pytest.approx(0.9 / 1.1)
    assert m.hd95_mm == pytest.approx(1.0)
    assert m.volume_pred_ml == pytest.approx(600 * 2 / 1000)
    empty = np.zeros_like(a)
    both = label_metrics(empty, empty, 1, (1, 1, 1))
    assert (both.dice, both.iou, both.hd95_mm) == (1.0, 1.0, 0.0)
    one = label_metrics(a, empty, 1, (1, 1, 1))
    assert (one.dice, one.iou) == (0.0, 0.0) and math.isinf(one.hd95_mm)
    assert one.to_json()["hd95_mm"] is None and one.to_json()["hd95_defined"] is False
    masked = b.copy()
    masked[:, :, :] = 255  # nothing annotated: nothing to compare
    assert label_metrics(a, masked, 1, (1, 1, 1)).dice == 1.0
    assert hd95(a == 1, a == 1, (1, 1, 1)) == 0.0
    per_slice = evaluate_slices(a, b, (2.0, 1.0, 1.0), 1, slices=[0, 4])
    assert per_slice[0].dice == 1.0 and per_slice[0].hd95_mm == 0.0  # both empty on slice 0
    assert per_slice[4].dice == pytest.approx(0.9) and per_slice[4].hd95_mm == pytest.approx(1.0)


def test_augmentation_keeps_shapes_and_label_values():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 32, 32)
    labels = torch.randint(0, 3, (8, 32, 32))
    labels[:, :3] = 255
    out_i, out_l = augment(images, labels, AugmentConfig(spatial_probability=1.0, intensity_probability=1.0), g)
    assert out_i.shape == images.shape and out_l.shape == labels.shape and out_l.dtype == torch.int64
    assert set(torch.unique(out_l).tolist()) <= {0, 1, 2, 255}
    assert torch.isfinite(out_i).all() and not torch.equal(out_i, images)
    same_i, same_l = augment(images, labels, AugmentConfig(spatial_probability=0.0, intensity_probability=0.0), g)
    assert torch.equal(same_i, images) and torch.equal(same_l, labels)


def test_preprocessing_schemes():
    hu, truth, sparse, *_ = phantom_case()
    ct = Preprocessing.for_modality("CT").fit_statistics([hu], [sparse])
    assert ct.window[1] - ct.window[0] >= 400 and abs(ct.mean - 90) < 5
    x = ct.normalize(hu, ct.volume_stats(hu))
    assert x.dtype == np.float32 and abs(float(x[truth == 1].mean())) < 0.5
    mr = Preprocessing.for_modality("MR")
    y = mr.normalize(hu, mr.volume_stats(hu))
    assert abs(float(y.mean())) < 0.05 and abs(float(y.std()) - 1) < 0.05
    assert Preprocessing(working_size=256).working_shape((512, 384)) == (256, 192)
    assert Preprocessing.from_json(ct.to_json()) == ct
    with pytest.raises(UnetguiError, match="unknown"):
        Preprocessing.from_json({**ct.to_json(), "surprise": 1})


def test_unet_shapes_and_config_validation():
    for cfg in (UNetConfig(classes=3, depth=2, base=4, context=1, norm="instance", dropout=0.1), UNetConfig(depth=4, base=4)):
        model = UNet(cfg).eval()
        x = torch.randn(2, cfg.in_channels, 2 ** cfg.depth * 3, 2 ** cfg.depth * 2)
        assert model(x).shape == (2, cfg.classes, x.shape[2], x.shape[3])
    with pytest.raises(UnetguiError):
        UNetConfig(norm="group")
    with pytest.raises(UnetguiError, match="unknown"):
        UNetConfig.from_json({"classes": 2, "width": 3})


def test_label_downsampling_stays_centred_on_the_image():
    from unetgui.engine.preprocessing import resize_slices

    labels = np.zeros((1, 512, 512), np.uint8)
    labels[0, 200:300, 100:220] = 3
    small = resize_slices(labels, (256, 256), nearest=True)[0]
    ys, xs = np.nonzero(small == 3)
    # the block covering source rows 200..299 is rows 100..149 at half size: centroid 124.5, not 125
    assert ys.mean() == pytest.approx(124.5) and xs.mean() == pytest.approx(79.5)
    back = resize_slices(small[None], (512, 512), nearest=True)[0]
    assert np.array_equal(back, labels[0])


def test_model_files_with_bad_metadata_are_refused(tmp_path, checkpoint):
    import json

    from safetensors.torch import save_file

    good = checkpoint.metadata()
    variants = {
        "list": [1, 2],
        "float_depth": {**good, "architecture": {**good["architecture"], "depth": 3.0}},
        "label_count": {**good, "labels": []},
        "nan_std": {**good, "preprocessing": {**good["preprocessing"], "std": float("nan")}},
        "bad_percentile": {**good, "preprocessing": {**good["preprocessing"], "percentiles": [0.5, 150]}},
    }
    for name, meta in variants.items():
        path = tmp_path / f"{name}.unetgui"
        save_file(checkpoint.weights, str(path), metadata={"unetgui": json.dumps(meta)})
        with pytest.raises(FormatError):
            model_file.load(str(path))


def test_out_of_memory_shrinks_the_batch_then_falls_back(checkpoint, monkeypatch):
    hu, *_ = phantom_case((6, 64, 64))
    predictor = Predictor(checkpoint, device="cpu", runtime="torch", batch_size=4)
    reference = Predictor(checkpoint, device="cpu", runtime="torch").predict(hu).labels
    real = predictor._probabilities

    def flaky(x):
        if x.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(x)

    monkeypatch.setattr(predictor, "_probabilities", flaky)
    assert np.array_equal(predictor.predict(hu).labels, reference)  # same result, one slice at a time
    assert predictor.batch_size == 1 and any("batch size reduced to 1" in n for n in predictor.notes)


def test_a_kernel_of_5_is_a_setting_the_model_file_keeps(tmp_path):
    """Issue 15 searches the kernel size: 5 x 5 convolutions keep the input's size, and the model file says so
    (files without the setting are 3 x 3)."""
    from unetgui.core.volume import LabelTable
    from unetgui.engine.unet import flops_per_pixel

    config = UNetConfig(classes=2, depth=2, base=4, kernel=5)
    model = UNet(config).eval()
    with torch.inference_mode():
        assert model(torch.zeros(1, 1, 32, 48)).shape == (1, 2, 32, 48)
    assert model.down[0][0].kernel_size == (5, 5)
    assert flops_per_pixel(config) > flops_per_pixel(UNetConfig(classes=2, depth=2, base=4))
    path = str(tmp_path / "k5.unetgui")
    model_file.save(Checkpoint.from_model(model, Preprocessing(), LabelTable.from_names("x"), {}), path)
    assert model_file.load(path).config.kernel == 5
    assert UNetConfig.from_json({"classes": 2, "depth": 2, "base": 4}).kernel == 3  # an older file
    with pytest.raises(UnetguiError, match="kernel size must be 3 or 5"):
        UNetConfig(kernel=4)
