"""Training fed on the device: patches drawn from resident tensors (engine/resident.py), losses read back every
few steps, validation batched on the device, patience in time as well as epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_fixtures import FAST, TABLE, TINY, phantom_case
from unetgui.core.errors import UnetguiError
from unetgui.core.volume import UNANNOTATED
from unetgui.engine.data import Case
from unetgui.engine.planner import PATIENCE_SHARE, fingerprint, plan_training
from unetgui.engine.resident import ResidentSampler, can_reside
from unetgui.engine.training import BatchStats, EpochStats, TrainConfig, Trainer


def _coordinates(shape) -> np.ndarray:
    z, y, x = np.indices(shape)
    return (z * 100_000 + y * 1000 + x).astype(np.float32)


def test_patches_are_crops_with_their_context_and_labels():
    shape = (6, 70, 90)
    image = _coordinates(shape)
    labels = np.zeros(shape, np.uint8)
    labels[:, 30:40, 50:60] = 1  # a small structure: centred patches must find it
    labels[4] = UNANNOTATED
    case = Case("c", image, labels, (0, 1, 2, 3, 5))
    sampler = ResidentSampler([case], [(0, z) for z in (0, 2, 5)], (32, 48), 1, 1.0, 0, torch.device("cpu"))
    images, patch_labels = sampler.batch(64)
    assert images.shape == (64, 3, 32, 48) and patch_labels.shape == (64, 32, 48) and patch_labels.dtype == torch.int64
    for b in range(64):
        centre = images[b, 1].numpy()
        z, y0, x0 = int(centre[0, 0] // 100_000), int(centre[0, 0] % 100_000 // 1000), int(centre[0, 0] % 1000)
        assert z in (0, 2, 5)
        assert np.array_equal(centre, image[z, y0:y0 + 32, x0:x0 + 48])
        for channel, dz in ((0, -1), (2, 1)):  # the neighbours, repeated at the volume's ends
            assert np.array_equal(images[b, channel].numpy(), image[min(max(z + dz, 0), 5), y0:y0 + 32, x0:x0 + 48])
        assert np.array_equal(patch_labels[b].numpy(), labels[z, y0:y0 + 32, x0:x0 + 48])
        assert (patch_labels[b] == 1).any()  # foreground fraction 1: every patch near the structure


def test_patches_larger_than_the_image_are_padded_as_not_annotated():
    image = _coordinates((2, 20, 24)) + 1
    labels = np.ones((2, 20, 24), np.uint8)
    sampler = ResidentSampler([Case("c", image, labels, (0, 1))], [(0, 0), (0, 1)], (32, 32), 0, 0.5, 3,
                              torch.device("cpu"))
    images, patch_labels = sampler.batch(16)
    inside = images[:, 0] != 0
    assert int(inside.sum(dim=(1, 2)).min()) == 20 * 24  # the whole image in every patch
    assert bool((patch_labels[~inside] == UNANNOTATED).all()) and bool((patch_labels[inside] == 1).all())


def test_foreground_fraction_is_kept():
    image = np.zeros((1, 256, 256), np.float32)
    labels = np.zeros((1, 256, 256), np.uint8)
    labels[0, 10:14, 200:204] = 1  # 16 pixels of 65536
    case = Case("c", image, labels, (0,))
    for fraction in (0.0, 0.5):
        sampler = ResidentSampler([case], [(0, 0)], (32, 32), 0, fraction, 1, torch.device("cpu"))
        hits = float(((sampler.batch(2000)[1] == 1).flatten(1).any(1)).float().mean())
        assert abs(hits - fraction) < 0.06 if fraction else hits < 0.06


def test_memory_mapped_cases_stay_on_the_host(tmp_path):
    image = np.zeros((2, 16, 16), np.float32)
    np.save(tmp_path / "i.npy", image)
    mapped = Case("c", np.load(tmp_path / "i.npy", mmap_mode="r"), np.zeros((2, 16, 16), np.uint8), (0,))
    assert not can_reside([mapped], torch.device("cpu"))
    assert can_reside([Case("c", image, np.zeros((2, 16, 16), np.uint8), (0,))], torch.device("cpu"))


def test_the_trainer_reads_the_loss_back_every_few_steps_only():
    *_, pre, case = phantom_case()
    config = TrainConfig(**{**FAST.to_json(), "epochs": 2, "steps_per_epoch": 10})
    trainer = Trainer([case], TABLE, pre, config, TINY)
    assert trainer._resident is not None and trainer.sampler is None  # in memory: drawn from the tensors
    trainer._report_every = 4  # as on a GPU (REPORT_STEPS)
    events = list(trainer.run())
    steps = [(e.epoch, e.step) for e in events if isinstance(e, BatchStats)]
    assert steps == [(1, 4), (1, 8), (1, 10), (2, 2), (2, 6), (2, 10)]  # every 4th step and each epoch's last
    assert all(np.isfinite(e.loss) for e in events if isinstance(e, BatchStats))
    assert [e.epoch for e in events if isinstance(e, EpochStats)] == [1, 2]


def test_a_diverging_run_is_reported_at_the_next_read():
    *_, pre, case = phantom_case()
    trainer = Trainer([case], TABLE, pre, TrainConfig(**{**FAST.to_json(), "epochs": 1}), TINY)
    with pytest.raises(UnetguiError, match="diverged"):
        trainer._read_loss([torch.tensor(1.0), torch.tensor(float("nan"))])


def test_resident_and_host_validation_agree():
    *_, pre, case = phantom_case()
    config = TrainConfig(**{**FAST.to_json(), "epochs": 1})
    trainer = Trainer([case], TABLE, pre, config, TINY)
    refs = trainer.train_refs + trainer.val_refs
    on_device = trainer._validate(refs)
    trainer._resident = None  # the host path (memory-mapped cases)
    on_host = trainer._validate(refs)
    assert on_device[0] == pytest.approx(on_host[0], rel=1e-5) and on_device[1] == on_host[1]


def _stop_reason(patience_minutes):
    *_, pre, case = phantom_case()
    config = TrainConfig(**{**FAST.to_json(), "epochs": 5, "steps_per_epoch": 2, "patience": 1,
                            "patience_minutes": patience_minutes})
    trainer = Trainer([case], TABLE, pre, config, TINY)
    trainer._validate = lambda refs: (0.5, {1: 0.5}, 0.1)  # a validation Dice that never improves
    return [e for e in trainer.run() if isinstance(e, EpochStats)][-1]


def test_patience_counts_time_as_well_as_epochs():
    """No better epoch after the first: patience in epochs alone stops at epoch 2; with minutes of patience
    the run goes on to its epoch limit."""
    assert _stop_reason(None).stop_reason == "early stopping"
    last = _stop_reason(10.0)
    assert last.stop_reason == "epochs" and last.epoch == 5


def test_the_plan_sets_patience_in_minutes_from_the_budget():
    *_, sparse, pre, case = phantom_case()
    fp = fingerprint([phantom_case()[0]], [sparse], "CT", [(1.0, 1.0)])
    for device in ("cpu", "cuda"):
        plan = plan_training(fp, device, 30.0)
        assert plan.train.patience_minutes == pytest.approx(PATIENCE_SHARE * 30.0)
    assert plan_training(fp, "cuda", 30.0).train.batch_size > 4  # a GPU is not left at a CPU's batch
    assert plan_training(fp, "cpu", None, {"epochs": 10}).train.patience_minutes is None

