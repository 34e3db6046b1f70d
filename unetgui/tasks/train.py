"""Train (or fine-tune) a U-Net on a data source: the one training path of the app, ``unetgui train``, the
benchmarks and the sample builder.

:func:`train` is a generator: it yields :class:`TrainStarted` (the plan, the split), then the trainer's
:class:`~unetgui.engine.events.BatchStats` and :class:`~unetgui.engine.events.EpochStats`, and returns a
:class:`TrainResult`. Stopping (``cancel``) is not a failure: the best epoch so far is the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from unetgui.core.errors import Cancelled, UnetguiError
from unetgui.core.progress import CancelToken, ProgressFn
from unetgui.core.volume import LabelTable
from unetgui.engine.config import check_device
from unetgui.engine.planner import OVERRIDES
from unetgui.tasks.sources import DataSource

if TYPE_CHECKING:
    from unetgui.engine.checkpoint import Checkpoint
    from unetgui.engine.planner import TrainingPlan


@dataclass(frozen=True)
class TrainRequest:
    """What to train: ``minutes`` of budget (None: ``overrides["epochs"]`` alone bounds it), planner
    ``overrides`` (engine/planner.py ``OVERRIDES``; None values mean "the planner's"), on ``device``;
    ``init``: the model to fine-tune; ``output``: the model file to write (None: the caller keeps the result)."""

    device: str = "auto"
    minutes: float | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    init: Checkpoint | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        check_device(self.device)
        unknown = sorted(set(self.overrides) - set(OVERRIDES))
        if unknown:
            raise UnetguiError(f"unknown settings {unknown} (known: {', '.join(OVERRIDES)})")
        epochs = self.overrides.get("epochs")
        if epochs is not None and epochs < 1:
            raise UnetguiError("the epoch limit must be at least 1")
        if self.overrides.get("workers") is not None and self.overrides["workers"] < 0:
            raise UnetguiError("the number of loader workers must be 0 or more")
        object.__setattr__(self, "overrides", MappingProxyType({k: v for k, v in self.overrides.items() if v is not None}))


@dataclass(frozen=True)
class TrainStarted:
    """The run is assembled: its plan, where it runs and what it trains and validates on."""

    plan: TrainingPlan
    device_name: str
    train_slices: int
    val_slices: int
    table: LabelTable
    summary: str = ""  # the data source's line on what it read
    notes: tuple[str, ...] = ()  # the readers' warnings


@dataclass(frozen=True)
class TrainResult:
    """``checkpoint``: the kept model (None: stopped before the first epoch ended); ``how``: "finished" or
    "stopped"; ``training`` and ``validation``: the (volume, slice) pairs it trained and validated on at the end
    (volume 0: the source's first; slices reviewed while it ran included); ``epochs``: epochs run;
    ``notes``: what the user should know (the fit check, out-of-memory fallbacks); ``rank``: the process's
    rank under torchrun (only rank 0 writes the model)."""

    checkpoint: Checkpoint | None
    how: str
    best_epoch: int = 0
    held_out: bool = False
    training: tuple[tuple[int, int], ...] = ()
    validation: tuple[tuple[int, int], ...] = ()
    epochs: int = 0
    volumes: int = 0
    stop_reason: str | None = None  # "epochs", "time budget", "early stopping"; None: stopped by the user
    notes: tuple[str, ...] = ()
    rank: int = 0
    output: str | None = None

    @property
    def kept(self) -> str:
        """Which weights the model holds, in words."""
        return f"{'best epoch' if self.held_out else 'final weights, epoch'} {self.best_epoch}"

    def summary(self) -> list[str]:
        """What a user needs to know when a training ends, in a few lines: how it ended, which weights were
        kept, the Dice that counts and what it is measured on, and the notes (the fit check, fallbacks)."""
        if self.checkpoint is None:
            return [f"Training {self.how} before the first epoch ended: the model is unchanged."]
        ended = {"epochs": "with its last epoch", "time budget": "at its time budget",
                 "early stopping": "by early stopping (validation Dice stopped improving)"}.get(
                     self.stop_reason or "", "by you" if self.how == "stopped" else "")
        lines = [f"Training ended{' ' + ended if ended else ''} after {self.epochs} epoch(s)."]
        names = {str(label.value): label.name for label in self.checkpoint.labels}
        dice = self.checkpoint.info.get("metrics", {}).get("val_dice", {})
        values = ", ".join(f"{names.get(k, k)} {v:.3f}" for k, v in dice.items())
        if self.held_out:
            lines.append(f"Kept: the best epoch, {self.best_epoch}. Validation Dice (on {len(self.validation)} "
                         f"held-out slice(s)): {values or 'n/a'}.")
        else:
            lines.append(f"Kept: the final weights (epoch {self.best_epoch}). Every reviewed slice trained, none was "
                         f"held out: the Dice shown ({values or 'n/a'}) is on the training slices and says how well "
                         "it learned them, not how well it does elsewhere. Mark a few slices as test (Shift+R) "
                         "and Evaluate for that.")
        return lines + list(self.notes)


def process_rank(device: str) -> int:
    """Join the process group of a ``torchrun`` launch (several GPUs or machines), once: this process's rank
    (0 without torchrun). Only rank 0 prints and writes the model."""
    from unetgui.engine import distributed

    return distributed.init_from_env(device)[0]


def train(request: TrainRequest, source: DataSource, cancel: CancelToken | None = None,
          progress: ProgressFn | None = None,
          updates: Callable[[], np.ndarray | None] | None = None) -> Iterator[Any]:
    """Train on ``source``; see the module's docstring for what it yields and returns.

    ``updates``: train while correcting: called after each epoch, returns the newest training labels of the
    source's first volume (its grid, 255 = not annotated) or None; they replace that volume's labels from the
    next epoch on."""
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.data import with_labels
    from unetgui.engine.events import EpochStats
    from unetgui.engine.training_run import build_trainer

    init = request.init
    data = source.load(progress, cancel, init.labels if init is not None else None)
    trainer = build_trainer(data.volumes, data.table, request.device, request.minutes, dict(request.overrides), init,
                            val_cases=list(data.val_cases) if data.val_cases is not None else None,
                            cache_root=data.cache_root)
    del data.volumes[:]  # the native labels of every series: the trainer holds what it needs
    yield TrainStarted(trainer.plan, trainer.device_name, len(trainer.train_refs), len(trainer.val_refs), data.table,
                       data.summary, data.notes)
    how = "finished"
    try:
        for event in trainer.run(cancel):
            yield event
            pending = updates() if updates is not None and isinstance(event, EpochStats) else None
            if pending is not None:  # the same image (no new copy), the newest labels, in the model's planes
                pending = np.ascontiguousarray(np.moveaxis(pending, trainer.plan.axis, 0))
                trainer.update_data([with_labels(trainer.source_cases[0], pending)] + trainer.source_cases[1:])
    except Cancelled:
        how = "stopped"
    # rank 0 alone keeps the model (the weights are the same on every rank; the fit check costs a prediction)
    best = trainer.best_checkpoint() if trainer.history and trainer.rank == 0 else None
    if best is not None and data.split is not None:  # case ids of a data set are its file names, not patient data
        best.info["dataset"] = data.split
    written = None
    if best is not None and request.output:
        model_file.save(best, request.output)
        written = request.output
    refs = lambda pairs: tuple((int(c), int(z)) for c, z in pairs)  # noqa: E731
    return TrainResult(best, how, trainer.best_epoch, bool(trainer.val_refs), refs(trainer.train_refs),
                       refs(trainer.val_refs), len(trainer.history), len(trainer.cases),
                       trainer.history[-1].stop_reason if trainer.history else None, tuple(trainer.notes), trainer.rank,
                       written)
