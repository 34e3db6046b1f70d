"""The torch inference pipeline (engine/stages.py, engine/inference.py) against the numpy/OpenCV pipeline it
replaced (tests/numpy_pipeline.py), on real series: labels equal on >= 99.9 % of voxels, probabilities
within one quantisation step. Also each stage against its numpy counterpart, the GPU batch size, the
background compilation and its fallback."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from conftest import DATA
from engine_fixtures import FAST, TABLE, TINY, phantom_case
from numpy_pipeline import Predictor as NumpyPredictor
from unetgui.core.ranking import slice_scores, uncertainty
from unetgui.engine import compiled, stages
from unetgui.engine.data import context_stack, pad_to_multiple
from unetgui.engine.inference import COMPILE_FROM, MAX_GPU_BATCH, Predictor, gpu_batch_size
from unetgui.engine.preprocessing import Preprocessing, resize_slices
from unetgui.engine.training import TrainConfig, Trainer
from unetgui.formats.dicom import load_series, scan


def _trained(context: int = 0):
    *_, pre, case = phantom_case()
    model = dataclasses.replace(TINY, context=context)
    trainer = Trainer([case], TABLE, pre, TrainConfig(**{**FAST.to_json(), "epochs": 3}), model)
    for _ in trainer.run():
        pass
    return trainer.best_checkpoint()


@pytest.fixture(scope="module")
def flat():
    return _trained(0)


@pytest.fixture(scope="module")
def stacked():
    return _trained(1)


def _series(folder: str) -> np.ndarray:
    (series, *_) = scan(str(DATA / folder)).series
    return load_series(series).voxels


def _agree(checkpoint, voxels: np.ndarray, **options) -> dict:
    new = Predictor(checkpoint, device="cpu", **options).predict(voxels, postprocess=False)
    old = NumpyPredictor(checkpoint, device="cpu", **options).predict(voxels, postprocess=False)
    same = float((new.labels == old.labels).mean())
    step = int(np.abs(new.probabilities.astype(int) - old.probabilities.astype(int)).max())
    assert same >= 0.999, f"labels equal on {same:.5f} of the voxels"
    assert step <= 1, f"probabilities differ by {step} quantisation steps"
    assert np.abs(new.uncertainty.astype(int) - old.uncertainty.astype(int)).max() <= 2
    return {"same": same, "step": step}


def test_ct_shrunk_to_the_working_size_agrees_with_the_numpy_pipeline(flat):
    """The cpu preset's case: a real 512 x 512 CT at working size 256 (area averaging by a whole factor), ONNX
    Runtime and torch runtimes."""
    ct = _series("totalsegmentator-example-ct-dicom")
    checkpoint = dataclasses.replace(flat, preprocessing=dataclasses.replace(flat.preprocessing, working_size=256))
    _agree(checkpoint, ct)
    _agree(checkpoint, ct[:6], runtime="torch")


def test_mr_with_context_and_an_uneven_shrink_agrees(stacked):
    """Hyperfine MR (uint16, 138 x 112), per-volume normalisation, 3 input slices, shrunk to 96 px (a factor
    of 1.4375: area weights, not a whole-factor pooling)."""
    mr = _series("dicom2nifti-test-series/hyperfine/anatomical")
    assert mr.dtype == np.uint16
    pre = Preprocessing(mode="per_volume", working_size=96)
    _agree(dataclasses.replace(stacked, preprocessing=pre), mr)


def test_enlarged_slices_with_flip_tta_agree(flat):
    mr = _series("dicom2nifti-test-series/philips/anatomical")
    pre = Preprocessing(mode="per_volume", working_size=320)  # 240 -> 320: bilinear
    _agree(dataclasses.replace(flat, preprocessing=pre), mr, tta=True)


def test_sliding_window_agrees(flat):
    ct = _series("dicom2nifti-test-series/failing/gantrytilting")[:2]
    _agree(flat, ct, tile_limit=256, runtime="torch")


def test_stages_match_their_numpy_counterparts():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (3, 138, 112)).astype(np.float32)
    for target in ((96, 78), (69, 56), (200, 162), (138, 112)):
        expected = resize_slices(image, target)
        got = stages.resize(torch.from_numpy(image)[None], target)[0].numpy()
        assert np.abs(got - expected).max() < 1e-4, target
    for shape in ((1, 2, 30, 45), (1, 1, 5, 3)):
        x = rng.normal(0, 1, shape).astype(np.float32)
        assert np.array_equal(stages.pad(torch.from_numpy(x), 16).numpy(), pad_to_multiple(x, 16))
    volume = rng.integers(-1000, 1000, (7, 4, 5)).astype(np.int16)
    index = stages.context_indices([0, 3, 6], 2, 7)
    assert np.array_equal(volume[index.numpy()], np.stack([context_stack(volume, z, 2) for z in (0, 3, 6)]))
    pre = Preprocessing(mode="ct", window=(-200.0, 300.0), mean=40.0, std=90.0)
    stats = pre.volume_stats(volume)
    assert np.allclose(stages.normalize(torch.from_numpy(volume), stats).numpy(), pre.normalize(volume, stats), atol=1e-6)
    probs = rng.dirichlet(np.ones(4), (2, 9, 9)).transpose(0, 3, 1, 2).astype(np.float32)
    quantised = stages.quantize(torch.from_numpy(probs)).numpy()
    assert np.array_equal(quantised, np.clip(probs * 255 + 0.5, 0, 255).astype(np.uint8))
    assert np.array_equal(stages.margin_uncertainty(torch.from_numpy(quantised)).numpy(), uncertainty(quantised))


def test_slice_scores_on_the_device_match_the_ranking(flat):
    """The app asks the predictor for the per-slice scores (the suggestion ranking), computed with the
    other stages instead of with scipy on the host afterwards."""
    ct = _series("totalsegmentator-example-ct-dicom")
    batches = list(Predictor(flat, device="cpu", scores=True).run(ct))
    for batch in batches:
        expected = slice_scores(batch.uncertainty, batch.labels)
        assert batch.scores.shape == (len(batch.slices),)
        assert np.allclose(batch.scores, expected, rtol=1e-4, atol=1e-2)
    assert max(float(b.scores.max()) for b in batches) > 0
    rng = np.random.default_rng(1)  # borders, empty slices, uncertain pixels without structure
    labels = np.zeros((3, 40, 50), np.uint8)
    labels[0, 0:5, 45:50] = 2
    labels[1, 20, 20] = 1
    uncert = rng.integers(0, 256, (3, 40, 50)).astype(np.uint8)
    got = stages.slice_scores(torch.from_numpy(uncert), torch.from_numpy(labels), 4, 0.5).numpy()
    assert np.allclose(got, slice_scores(uncert, labels), rtol=1e-5)


def test_gpu_batch_size_follows_the_free_memory():
    config = dataclasses.replace(TINY, base=32, depth=5)
    assert gpu_batch_size(config, (512, 512), 130 * 2**30) == MAX_GPU_BATCH
    small = gpu_batch_size(config, (512, 512), 2 * 2**30)
    assert 1 <= small < MAX_GPU_BATCH
    assert gpu_batch_size(config, (512, 512), 2 * 2**30, tta=True) <= small
    assert gpu_batch_size(config, (512, 512), 0) == 1
    # a working size far below the input grid: the full-resolution tensors count too
    native = gpu_batch_size(config, (256, 256), 2 * 2**30, native_yx=(1024, 1024))
    assert native < gpu_batch_size(config, (256, 256), 2 * 2**30)


def test_bf16_only_on_gpus_that_compute_it():
    """torch.cuda.is_bf16_supported() also says yes where bf16 is emulated (T4, V100): those get fp16."""
    from unetgui.engine.device import amp_dtype, bf16_native

    assert not bf16_native((7, 5)) and not bf16_native((7, 0)) and bf16_native((8, 0)) and bf16_native((9, 0))
    assert amp_dtype(torch.device("cpu")) is None


def test_stage_timings_and_throughput_are_reported(flat):
    hu = phantom_case()[0]
    prediction = Predictor(flat, device="cpu").predict(hu, keep_probabilities=False)
    assert prediction.segmented == hu.shape[0] and prediction.slices_per_second > 0
    assert set(prediction.timings) == {"upload", "preprocess", "forward", "postprocess", "download"}
    assert prediction.timings["forward"] > 0


def test_compiled_forward_takes_over_when_ready_and_gives_the_same_result(flat):
    hu = phantom_case((COMPILE_FROM, 64, 64))[0]
    eager = Predictor(flat, device="cpu", runtime="torch").predict(hu, postprocess=False)
    predictor = Predictor(flat, device="cpu", runtime="torch", compile=True, batch_size=4)
    predictor.predict(hu[:COMPILE_FROM - 1], postprocess=False)  # a few slices: nothing is compiled for them
    shape = (4, 1, *hu.shape[1:])
    assert compiled.existing(flat, predictor.model, shape, None) is None
    first = predictor.predict(hu, postprocess=False)  # eager; when it is done, compilation starts
    found = compiled.existing(flat, predictor.model, shape, None)
    assert found is not None, "the run did not start compiling its batch shape"
    assert found.wait(120) and found.state in ("ready", "failed")
    second = predictor.predict(hu, postprocess=False)
    for result in (first, second):  # the compiled graph fuses differently: rounding may flip a boundary pixel
        assert float((result.labels == eager.labels).mean()) >= 0.999
        assert np.abs(result.probabilities.astype(int) - eager.probabilities.astype(int)).max() <= 1
    if found.state == "ready":
        assert predictor.compiled_runs > 0
    else:  # no C++ compiler on this machine: the eager model ran, and the note says why
        assert any("torch.compile failed" in n for n in predictor.notes)


def test_a_failing_compilation_leaves_the_eager_model_in_charge(flat, monkeypatch):
    """A compiler that cannot work (no C++ compiler, no Triton) is tried once: the eager model runs, the
    note says why once (not after every segmentation), and no other shape or model is compiled again."""
    tries = []

    def broken(*args, **kwargs):
        tries.append(1)
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(compiled, "_BROKEN", {})
    monkeypatch.setattr(compiled, "_REPORTED", set())
    started = time.monotonic()
    hu = phantom_case((COMPILE_FROM, 64, 64))[0]
    checkpoint = dataclasses.replace(flat)  # another model object: its own cache entry
    predictor = Predictor(checkpoint, device="cpu", runtime="torch", compile=True)
    result = predictor.predict(hu, postprocess=False)
    compiled.existing(checkpoint, predictor.model, (2, 1, *hu.shape[1:]), None).wait(30)
    predictor.predict(hu, postprocess=False)
    assert result.labels.shape == hu.shape and time.monotonic() - started < 60
    assert [n for n in predictor.notes if "torch.compile failed" in n and "no compiler here" in n]
    again = Predictor(dataclasses.replace(flat), device="cpu", runtime="torch", compile=True, batch_size=4)
    for _ in range(2):  # a new model and shape: not tried, and not said again
        assert np.array_equal(again.predict(hu, postprocess=False).labels, result.labels)
    assert len(tries) == 1 and not any("torch.compile" in n for n in again.notes)
    forward = compiled.compiled_forward(checkpoint, predictor.model, (3, 1, 64, 64), None)
    assert forward.state == "failed" and "no compiler here" in forward.error and not forward.ready_for((3, 1, 64, 64))


def test_past_the_compilers_graph_limit_a_shape_fails_instead_of_running_eager_as_compiled(flat, monkeypatch):
    """Dynamo holds a limited number of graphs for UNet.forward and, past it, silently runs the model
    uncompiled: the warm-up makes that an error, so the shape is "failed" and the Predictor says so. The
    shapes of one model share one copy of it."""
    monkeypatch.setattr(compiled, "RECOMPILE_LIMIT", 1)  # (graphs of earlier tests may count: the first may fail too)
    monkeypatch.setattr(compiled, "_BROKEN", {})
    owner = dataclasses.replace(flat)
    model = owner.build("cpu")
    first = compiled.compiled_forward(owner, model, (5, 1, 32, 32), None, backend="eager")
    assert first.wait(120)
    second = compiled.compiled_forward(owner, model, (7, 1, 32, 32), None, backend="eager")
    assert second.wait(120)
    assert second.state == "failed" and "recompile" in second.error.lower(), second.error
    assert first._model is second._model and first._model is not model
    assert compiled._BROKEN == {}  # a full graph cache is this shape's lot, not a broken compiler



def test_the_streaming_feed_gives_the_same_result_also_when_the_batch_shrinks(stacked, monkeypatch):
    """The producer thread that uploads batch i + 1 while batch i computes (on CUDA for volumes too large to
    upload whole), run on the CPU with plain copies: with 2.5-D context and an uneven last batch the result is
    the one the direct feed gives, and after an out-of-memory that halves the batch the prefetched slices no
    longer match the batch and are uploaded again, not used for the wrong slices."""
    from unetgui.engine import inference

    hu = phantom_case((11, 64, 64))[0]
    direct = Predictor(stacked, device="cpu", runtime="torch", batch_size=4).predict(hu, postprocess=False)
    feeds, feed = [], inference._Feed

    def streaming(*args, **kwargs):
        feeds.append(feed(*args, **kwargs, stream=True))
        return feeds[-1]

    monkeypatch.setattr(inference, "_Feed", streaming)
    streamed = Predictor(stacked, device="cpu", runtime="torch", batch_size=4).predict(hu, postprocess=False)
    assert feeds[-1].streaming and _same(streamed, direct)

    predictor = Predictor(stacked, device="cpu", runtime="torch", batch_size=4)
    real, calls = predictor._probabilities, []

    def out_of_memory_once(x):
        calls.append(x.shape[0])
        if len(calls) == 2:  # the second batch, after slices 8-10 were prefetched for a batch of 4
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(x)

    monkeypatch.setattr(predictor, "_probabilities", out_of_memory_once)
    shrunk = predictor.predict(hu, postprocess=False)
    assert calls[:3] == [4, 4, 2] and predictor.batch_size == 2
    assert _same(shrunk, direct)


def _same(a, b) -> bool:
    """The same segmentation up to the last bits of another batch size's kernels (a slice taken for another,
    the failure these tests look for, differs on a large share of its voxels)."""
    return float((a.labels == b.labels).mean()) >= 0.9999 and int(
        np.abs(a.probabilities.astype(int) - b.probabilities.astype(int)).max()) <= 1
