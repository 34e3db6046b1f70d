"""What a training reports while it runs: one :class:`BatchStats` per step, one :class:`EpochStats` per epoch.

Plain data, no torch: the app's panels and the command line read them without loading the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchStats:
    epoch: int
    step: int  # within the epoch, 1-based
    steps: int
    loss: float
    learning_rate: float
    elapsed: float  # seconds since training started
    eta: float  # seconds left (by the epoch limit or the time budget, whichever is nearer)


@dataclass(frozen=True)
class EpochStats:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float | None
    val_dice: dict[int, float]  # label value -> Dice on the validation slices (empty if no validation)
    val_pixel_error: float | None  # 1 - pixel accuracy on the annotated validation pixels
    learning_rate: float
    elapsed: float
    best_epoch: int
    is_best: bool
    train_slices: int
    val_slices: int
    stop_reason: str | None = None  # set on the last epoch: "epochs", "time budget", "early stopping"
    dice_on: str = "validation"  # "validation" slices, or the "annotated" (training) slices when none is held out
    train_cases: int = 1  # volumes (series, data set cases) the training slices come from
    val_cases: int = 0

    @property
    def mean_dice(self) -> float | None:
        return float(np.mean(list(self.val_dice.values()))) if self.val_dice else None
