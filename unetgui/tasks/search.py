"""Search the training's hyperparameters on Optuna (engine/tuning.py): the one search of the app's Tune
dialog and ``unetgui tune``. Resumable and shareable through its storage; writes the best trial's model,
``<base>.trials.csv`` (one row per trial), ``<base>.best.json`` (the best configuration, which
``unetgui train --config`` takes) with Optuna's parameter importances.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unetgui.core import atomic, csvcell
from unetgui.core.errors import Cancelled, UnetguiError
from unetgui.core.progress import CancelToken, ProgressFn
from unetgui.core.textsafe import one_line
from unetgui.core.volume import slice_coverage
from unetgui.engine.config import check_device
from unetgui.tasks.sources import DataSource

#: what may be searched (engine/tuning.py SPACE; named here so that a parser or a dialog need not import torch)
PARAMS = ("depth", "base", "batch_size", "patch", "learning_rate", "weight_decay", "context", "kernel", "dice_weight",
          "augment_strength")
DEFAULT_PARAMS = ("depth", "base", "batch_size", "learning_rate")
DEFAULT_TRIAL_MINUTES = 2.0


@dataclass(frozen=True)
class SearchRequest:
    """``output``: the best model's file; the study, the trial table and the best configuration go next to it
    (``storage`` None: ``sqlite:///<output without extension>.optuna.db``). The search ends after ``trials``
    trials or ``minutes`` of wall clock in this process, whichever comes first (at least one is given)."""

    output: str
    params: tuple[str, ...] = DEFAULT_PARAMS
    trial_minutes: float = DEFAULT_TRIAL_MINUTES
    minutes: float | None = None
    trials: int | None = None
    storage: str | None = None
    study: str = "unetgui"
    seed: int = 0
    threads: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.trials is None and self.minutes is None:
            raise UnetguiError("give a number of trials or a time budget (or both)")
        if self.trials is not None and self.trials < 1:
            raise UnetguiError("the number of trials must be at least 1")
        if self.minutes is not None and not self.minutes > 0:
            raise UnetguiError("the search's time budget must be positive")
        if not self.trial_minutes > 0:
            raise UnetguiError("the minutes per trial must be positive")
        unknown = sorted(set(self.params) - set(PARAMS))
        if unknown or not self.params:
            raise UnetguiError(f"search one or more of {', '.join(PARAMS)} (unknown: {unknown})")
        check_device(self.device)
        object.__setattr__(self, "params", tuple(self.params))

    @property
    def base(self) -> str:
        return os.path.splitext(os.path.abspath(self.output))[0]

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.base}.optuna.db"


@dataclass(frozen=True)
class SearchStarted:
    """The study is open: ``before`` trials were in it already (a resumed or shared search)."""

    storage: str
    study: str
    before: int
    summary: str = ""  # the data source's line on what it read
    notes: tuple[str, ...] = ()  # the readers' warnings


@dataclass(frozen=True)
class TrialEpoch:
    """An epoch of a running trial (``trial`` -1: the best configuration trained on every annotated slice
    after a cross-validated search)."""

    trial: int
    epoch: int
    dice: float


@dataclass(frozen=True)
class SearchResult:
    """``model``: the best model's file (None: no trial completed, or stopped before the best configuration
    was trained on every annotated slice); ``how``: "finished", "stopped", or why no model is offered."""

    model: str | None
    params: dict | None
    how: str
    trials: list = field(default_factory=list)  # engine.tuning.TrialResult, every trial of the study
    best_trial: int | None = None
    dice: float | None = None
    importances: dict = field(default_factory=dict)
    refit: bool = False  # the model is the best configuration trained on every annotated slice
    written: tuple[str, ...] = ()


def _complete_slices(labels) -> int:
    """Slices annotated over most of their voxels (core.volume.slice_coverage): what a trial is measured on."""
    annotated, partial = slice_coverage(labels)
    return len(annotated) - len(partial)


def search(request: SearchRequest, source: DataSource, cancel: CancelToken | None = None,
           progress: ProgressFn | None = None, emit: Callable[[Any], None] | None = None) -> SearchResult:
    """Run the search on ``source``. ``emit`` gets :class:`SearchStarted`, each finished trial
    (engine.tuning.TrialResult), each trial's epoch (:class:`TrialEpoch`) and, before a refit, the string "refit"."""
    from unetgui.engine import tuning

    emit = emit or (lambda _: None)
    os.makedirs(os.path.dirname(request.base) or ".", exist_ok=True)  # the app's tune folder (the CLI's exists)
    # before the data is read (minutes, and a data set's cache is written): a storage that cannot be used or a
    # study of another program ends the search here, with nothing written
    study = tuning.open_study(request.storage_url, request.study, request.seed)
    data = source.load(progress, cancel)
    build = {"cache_root": data.cache_root}
    if data.val_cases is not None:
        build["val_cases"] = list(data.val_cases)
    elif sum(_complete_slices(v.labels) for v in data.volumes) < 2:  # before the first trial, not in each one
        raise UnetguiError("a search needs at least 2 completely annotated slices to measure its trials on (mark "
                           "corrected slices reviewed, R): strokes alone train, but cannot measure a trial")
    fixed = {"seed": request.seed, "threads": request.threads}
    emit(SearchStarted(tuning.shown_url(request.storage_url), request.study, len(study.trials), data.summary, data.notes))

    def on_epoch(number: int, event) -> None:
        emit(TrialEpoch(number, event.epoch, event.mean_dice if event.mean_dice is not None else math.nan))

    objective = tuning.objective_for(data.volumes, data.table, request.device, request.trial_minutes, request.params,
                                     fixed, request.output, cancel, on_epoch=on_epoch, build=build)
    tuning.run(study, objective, request.trials, request.minutes, cancel, on_trial=emit)
    stopped = cancel is not None and cancel.is_set
    refit = tuning.needs_refit(study)
    if refit and not stopped:
        # the trials were cross-validated (too few annotated slices to hold some out): the best configuration
        # trains on every annotated slice; its epochs are told as trial -1
        emit("refit")
        try:
            tuning.refit(study, data.volumes, data.table, request.device, request.trial_minutes, fixed, request.output,
                         cancel, build=build, on_epoch=lambda n, e: on_epoch(-1, e))
        except Cancelled:  # stopped while the best settings trained on every slice: the trials still count
            stopped = True
    return _report(study, request, "stopped" if stopped else "finished", refit, stopped)


def _report(study, request: SearchRequest, how: str, refit: bool, stopped: bool) -> SearchResult:
    """The trial table and the best configuration on disk; the result. The model is offered only when the
    output file is the best trial's (its stamp names this study and that trial)."""
    from unetgui.engine import tuning

    rows = tuning.results(study)
    complete = [r for r in rows if r.state == "complete" and r.value is not None]
    best = study.best_trial if complete else None
    overrides = tuning.best_overrides(study) if best is not None else None  # checked before anything is written
    names = sorted({k for r in rows for k in r.params})
    table = [{"trial": r.number, "state": r.state, "dice": r.value, "minutes": r.minutes, **r.params,
              "reason": one_line(r.reason)} for r in rows]
    trials_csv = f"{request.base}.trials.csv"
    atomic.write_bytes(trials_csv, csvcell.table_text(["trial", "state", "dice", "minutes", *names, "reason"],
                                                      table).encode("utf-8"))
    written = [trials_csv]
    if best is None:
        return SearchResult(None, None, how, rows, written=tuple(written))
    importances = tuning.importances(study)
    best_json = f"{request.base}.best.json"
    atomic.write_json(best_json, {"study": request.study, "trial": best.number, "dice": best.value,
                                  "overrides": overrides, "importances": importances})
    written.append(best_json)
    folds = bool(best.user_attrs.get("folds"))
    if refit and stopped:  # the model on disk saw a fold's slices only: not offered
        return SearchResult(None, best.params, "stopped before the best settings were trained on every annotated slice",
                            rows, best.number, best.value, importances, refit, tuple(written))
    stamp = tuning.model_trial(request.output)
    if not stamp or stamp.get("study") != tuning.study_id(study) or stamp.get("trial") != best.number \
            or bool(stamp.get("refit")) != folds:
        # the best trial ran in another process (a shared storage), or the file was replaced: not offered as its model
        return SearchResult(None, best.params, f"{how}; the best trial's model is not in {request.output} (trial {best.number} "
                            "ran in another process, or the file was replaced); train its settings with train --config "
                            f"{best_json}", rows, best.number, best.value, importances, folds, tuple(written))
    written.insert(0, request.output)
    return SearchResult(request.output, best.params, how, rows, best.number, best.value, importances, folds,
                        tuple(written))
