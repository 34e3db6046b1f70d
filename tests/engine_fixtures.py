"""Tiny models and phantom training data for engine tests (seconds each)."""

from __future__ import annotations

import numpy as np

from conftest import phantom_hu
from unetgui.core.volume import LabelTable
from unetgui.engine.data import prepare_case
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.training import TrainConfig
from unetgui.engine.unet import UNetConfig

TINY = UNetConfig(classes=2, depth=3, base=8)
FAST = TrainConfig(epochs=10, steps_per_epoch=10, batch_size=4, patch=64, learning_rate=1e-2, warmup_steps=10,
                   device="cpu", threads=2, seed=0, patience=100)
TABLE = LabelTable.from_names("liver")
ANNOTATED = [2, 5, 8, 10]


def phantom_case(shape=(12, 64, 64)):
    """(hu volume, full truth, sparse labels with 255 elsewhere, preprocessing, case)."""
    hu = phantom_hu(shape)
    truth = (hu > 65).astype(np.uint8)
    sparse = np.full(hu.shape, 255, np.uint8)
    annotated = [z for z in ANNOTATED if z < shape[0]] or [0]
    sparse[annotated] = truth[annotated]
    pre = Preprocessing.for_modality("CT").fit_statistics([hu], [sparse])
    return hu, truth, sparse, pre, prepare_case("phantom", hu, sparse, pre)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred == 1, truth == 1
    return float(2 * (p & t).sum() / max(p.sum() + t.sum(), 1))


def tiny_checkpoint(epochs: int = 1):
    """A tiny model trained for ``epochs`` on the phantom (about a second)."""
    from unetgui.engine.training import Trainer

    *_, pre, case = phantom_case()
    trainer = Trainer([case], TABLE, pre, TrainConfig(**{**FAST.to_json(), "epochs": epochs}), TINY)
    for _ in trainer.run():
        pass
    return trainer.best_checkpoint()
