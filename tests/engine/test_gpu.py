"""The GPU path on a CUDA GPU (all skipped without one; CI has none). Only torch, numpy and the engine are
needed, so that this module also runs on a GPU machine without the DICOM and Qt packages."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine_fixtures import FAST, TABLE, TINY, phantom_case, tiny_checkpoint
from unetgui.engine import inference
from unetgui.engine.augment import AugmentConfig
from unetgui.engine.inference import Predictor
from unetgui.engine.training import TrainConfig, Trainer

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]


@pytest.fixture(scope="module")
def model():
    return tiny_checkpoint(3)


def _ct(slices: int = 40, size: int = 512) -> np.ndarray:
    from conftest import phantom_hu

    return phantom_hu((slices, size, size))


def test_cuda_pipeline_agrees_with_the_cpu_pipeline(model):
    ct = _ct()
    checkpoint = dataclasses.replace(model, preprocessing=dataclasses.replace(model.preprocessing, working_size=256))
    gpu = Predictor(checkpoint, device="cuda", compile=False).predict(ct, postprocess=False)
    cpu = Predictor(checkpoint, device="cpu").predict(ct, postprocess=False)
    assert float((gpu.labels == cpu.labels).mean()) >= 0.995  # bf16 on the GPU, fp32 on the CPU
    assert np.abs(gpu.probabilities.astype(int) - cpu.probabilities.astype(int)).mean() < 2
    assert gpu.segmented == ct.shape[0] and gpu.timings["forward"] > 0


def test_cuda_streams_a_volume_too_large_to_upload_at_once(model, monkeypatch):
    ct = _ct()
    whole = Predictor(model, device="cuda", compile=False).predict(ct, postprocess=False)
    monkeypatch.setattr(inference, "VOLUME_MEMORY_SHARE", 0.0)  # every batch through the upload thread
    streamed = Predictor(model, device="cuda", compile=False, batch_size=3).predict(ct, postprocess=False)
    # (cuDNN may choose another convolution algorithm for another batch size: near-ties may flip in bf16)
    assert float((whole.labels == streamed.labels).mean()) >= 0.999


def test_autocast_is_bf16_only_where_the_gpu_computes_it():
    from unetgui.engine.device import amp_dtype

    major, _ = torch.cuda.get_device_capability()
    assert amp_dtype(torch.device("cuda")) == (torch.bfloat16 if major >= 8 else torch.float16)


def test_cuda_batch_comes_from_the_free_memory(model):
    predictor = Predictor(model, device="cuda", compile=False)
    predictor.predict(_ct(3), keep_probabilities=False)
    assert predictor.batch_size == 4  # no bigger than the slices asked for need
    predictor.predict(_ct(100), keep_probabilities=False)  # and the next, larger run is not held to that
    assert 16 < predictor.batch_size <= inference.MAX_GPU_BATCH  # a tiny model: far more than the old 16 fit


def test_compiled_model_takes_over_on_cuda(model):
    from unetgui.engine import compiled

    ct = _ct(32)
    predictor = Predictor(model, device="cuda", batch_size=16)  # compile: on by default on CUDA
    first = predictor.predict(ct, postprocess=False)
    forward = compiled.existing(model, predictor.model, (16, 1, 512, 512), predictor._amp)
    assert forward is not None and forward.wait(600)
    second = predictor.predict(ct, postprocess=False)
    assert forward.state == "ready", forward.error
    assert predictor.compiled_runs > 0
    assert float((first.labels == second.labels).mean()) >= 0.999


@pytest.mark.parametrize("amp", ["native", "fp16"])
def test_cuda_training_steps_do_not_wait_for_the_device(amp, monkeypatch):
    """Between two reports no training step synchronises with the GPU (torch raises on a synchronising call);
    also with fp16 and its loss scaler, as on GPUs without bf16 (the fused AdamW takes the scaler's inf check
    on the device)."""
    from unetgui.engine import training

    if amp == "fp16":
        monkeypatch.setattr(training, "amp_dtype", lambda device: torch.float16)
    *_, pre, case = phantom_case((24, 128, 128))
    config = TrainConfig(**{**FAST.to_json(), "device": "cuda", "epochs": 1, "steps_per_epoch": 40, "ema": 0.99})
    trainer = Trainer([case], TABLE, pre, config, TINY)
    assert trainer._resident is not None and trainer._resident.images[0].is_cuda
    assert trainer._scaler.is_enabled() == (amp == "fp16") and trainer.optimizer.param_groups[0]["fused"]
    trainer._step(AugmentConfig())  # warm-up: cuDNN autotuning, the allocator
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [trainer._step(AugmentConfig()) for _ in range(8)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert np.isfinite(trainer._read_loss(losses))


def test_cuda_training_runs_whole_epochs_with_validation():
    *_, pre, case = phantom_case((24, 128, 128))
    config = TrainConfig(**{**FAST.to_json(), "device": "cuda", "epochs": 3, "steps_per_epoch": 20})
    trainer = Trainer([case], TABLE, pre, config, TINY)
    events = list(trainer.run())
    assert events[-1].epoch == 3 and events[-1].val_dice
    assert trainer.best_checkpoint().weights  # the best state comes back to the CPU
