"""Run settings as frozen, validated dataclasses: the U-Net architecture and the training recipe.

No torch here, so the planner and the app can build and show settings before the engine is loaded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from unetgui.core.errors import UnetguiError

#: where models may run: "auto" takes a CUDA GPU, then an Apple GPU, then the CPU (the one list: the app's
#: device menu, every command's --device and engine/device.py read it)
DEVICES = ("auto", "cpu", "cuda", "mps")


def check_device(name: str) -> str:
    """``name`` when it is one of :data:`DEVICES`, else a readable :class:`UnetguiError`."""
    if name not in DEVICES:
        raise UnetguiError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")
    return name

NORMS = ("batch", "instance", "none")
#: widest first level (nnU-Net's 2-D U-Net uses 32; 128 at depth 4 is 1.2e8 parameters, 0.5 GB)
MAX_BASE = 128


@dataclass(frozen=True)
class UNetConfig:
    """Architecture. ``in_channels`` = 1 + 2 * ``context`` for 2.5-D input (neighbouring slices)."""

    classes: int = 2  # background + K labels
    depth: int = 4  # number of poolings
    base: int = 16  # channels of the first level; doubled at each level down
    norm: str = "batch"
    dropout: float = 0.0  # dropout before the bottleneck's second convolution
    context: int = 0  # neighbouring slices on each side given as extra input channels (2.5-D)
    kernel: int = 3  # convolution kernel size (3 or 5); model files without it are 3

    def __post_init__(self) -> None:
        for name in ("classes", "depth", "base", "context", "kernel"):
            if type(getattr(self, name)) is not int:
                raise UnetguiError(f"U-Net setting {name} must be a whole number, got {getattr(self, name)!r}")
        if not 2 <= self.classes <= 255:
            raise UnetguiError(f"a U-Net has 2..255 classes (background + 1..254 labels), got {self.classes}")
        if not 1 <= self.depth <= 6:
            raise UnetguiError(f"depth must be 1..6, got {self.depth}")
        if not 2 <= self.base <= MAX_BASE:
            raise UnetguiError(f"base width must be 2..{MAX_BASE}, got {self.base}")
        if self.norm not in NORMS:
            raise UnetguiError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not 0 <= self.dropout < 1:
            raise UnetguiError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.context <= 3:
            raise UnetguiError(f"context must be 0..3 slices, got {self.context}")
        if self.kernel not in (3, 5):
            raise UnetguiError(f"kernel size must be 3 or 5, got {self.kernel}")

    @property
    def in_channels(self) -> int:
        return 1 + 2 * self.context

    @property
    def multiple(self) -> int:
        """Input y and x must be multiples of this."""
        return 2**self.depth

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> UNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UnetguiError(f"unknown U-Net settings in the model file: {sorted(unknown)}")
        return cls(**data)


SCHEDULES = ("poly", "cosine")
#: the fit check: a model whose Dice on its own annotated slices is below this when training ends has not
#: learned what it was shown (a small structure drowned by background, a budget too short), and says so
FIT_DICE = 0.8


def selection(validated: bool, averaged: bool) -> str:
    """Which weights a run keeps, in words (the plan, the model file and the app say it the same way)."""
    if validated:
        return "best validation epoch"
    return "final weights (moving average)" if averaged else "final weights"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 300
    minutes: float | None = None  # wall-clock budget; training stops at whichever limit comes first
    steps_per_epoch: int = 50
    batch_size: int = 4
    patch: tuple[int, int] = (256, 256)  # (y, x) pixels; a single int means a square
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    schedule: str = "poly"
    patience: int = 25  # epochs without a better validation Dice before stopping
    # ... and, when set, minutes without one (the planner: a share of the time budget; GPU epochs are short)
    patience_minutes: float | None = None
    augment: bool = True
    foreground_fraction: float = 0.5
    val_fraction: float = 1 / 6
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: bool = True
    holdout_min: int = 0  # fewer annotated slices than this: no validation slice, all train (see split)
    ema: float | None = None  # decay of an exponential moving average of the weights (None: off)
    elastic: bool = False  # elastic deformation in the augmentation (the U-Net paper's)
    # the U-Net paper's border weight map on the cross-entropy (engine/weightmap.py): w0, or None for off
    border_weight: float | None = None
    loader_workers: int = 0  # DataLoader processes drawing batches from cached cases (engine/loader.py); 0: none
    dice_weight: float = 1.0  # the loss is cross-entropy + dice_weight x (1 - soft Dice)
    augment_strength: float = 1.0  # the augmentation's magnitudes times this (AugmentConfig.scaled)
    foreground_weight: float = 1.0  # a labelled pixel's cross-entropy term weighs this much (background: 1)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise UnetguiError(f"schedule must be one of {SCHEDULES}")
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.batch_size < 1:
            raise UnetguiError("epochs, steps per epoch and batch size must be at least 1")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise UnetguiError("the time budget must be a positive number of minutes")
        if not (math.isfinite(self.dice_weight) and 0 <= self.dice_weight <= 100):
            raise UnetguiError(f"the Dice weight must be 0..100, got {self.dice_weight}")
        if not (math.isfinite(self.augment_strength) and 0 <= self.augment_strength <= 2):
            raise UnetguiError(f"the augmentation strength must be 0..2, got {self.augment_strength}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise UnetguiError("the learning rate must be a positive number")
        if self.patience_minutes is not None and not (math.isfinite(self.patience_minutes) and self.patience_minutes >= 0):
            raise UnetguiError("the patience in minutes must be a non-negative number")
        if not (math.isfinite(self.foreground_weight) and 0 < self.foreground_weight <= 1000):
            raise UnetguiError(f"the foreground weight must be in (0, 1000], got {self.foreground_weight}")
        if not (math.isfinite(self.foreground_fraction) and 0 <= self.foreground_fraction <= 1):
            raise UnetguiError(f"the share of patches centred on a structure must be 0..1, got {self.foreground_fraction}")
        if self.threads is not None and self.threads < 1:
            raise UnetguiError("threads must be at least 1")
        patch = (self.patch, self.patch) if isinstance(self.patch, (int, float)) else tuple(self.patch)
        if len(patch) != 2 or any(type(p) is not int or p < 16 for p in patch):
            raise UnetguiError(f"patch must be at least 16 x 16 whole pixels, got {self.patch!r}")
        object.__setattr__(self, "patch", patch)
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise UnetguiError("the weight-averaging decay must lie between 0 and 1")
        if self.border_weight is not None and not (math.isfinite(self.border_weight) and self.border_weight > 0):
            raise UnetguiError("the border weight must be a positive number")

    def to_json(self) -> dict:
        return {**asdict(self), "patch": list(self.patch)}

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise UnetguiError(f"unknown training settings: {sorted(unknown)}")
        return cls(**data)
