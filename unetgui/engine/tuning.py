"""Hyperparameter search on Optuna (``unetgui tune``): every trial is the planner's configuration with some
values overridden, trained by :func:`~unetgui.engine.training_run.build_trainer` like any run.

* The objective is the validation Dice of the trial's kept weights, on the same split for every trial
  (the split depends on the data and the seed only). Each epoch's Dice is reported to Optuna and a median
  pruner stops unpromising trials, so a budget tries more configurations.
* The study lives in its storage (an SQLite file by default): a search interrupted and started again
  continues it, and several processes with the same storage work on one study at once.
* A trial that fails (out of memory, a combination the planner refuses) is recorded as failed with its
  one-line reason and the search goes on.
* Whenever a trial beats the best so far, its model is written to the output (atomically).
* Too few annotated slices to hold some out: each trial is cross-validated over the slices, and the best
  configuration is refitted on all of them at the end (:func:`refit`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import optuna

from unetgui.core.errors import Cancelled, UnetguiError
from unetgui.core.progress import CancelToken, check
from unetgui.core.volume import LabelTable
from unetgui.engine import checkpoint as model_file
from unetgui.engine.training import EpochStats
from unetgui.engine.training_run import AnnotatedVolume, build_trainer

#: what can be searched, and how: (kind, low, high) around nothing (fixed ranges) or the planner's value
SPACE = {
    "depth": ("int", 2, 5),
    "base": ("choice", (8, 16, 24, 32)),
    "batch_size": ("choice", (2, 4, 8, 16)),
    "patch": ("choice", (64, 96, 128, 160, 192, 256)),
    "learning_rate": ("log", 3e-4, 1e-2),
    "weight_decay": ("log", 1e-6, 1e-2),
    "context": ("int", 0, 2),
    "kernel": ("choice", (3, 5)),
    "dice_weight": ("log", 0.25, 4.0),
    "augment_strength": ("float", 0.25, 1.5),
}


@dataclass
class TrialResult:
    number: int
    state: str  # "complete", "pruned", "failed", "running"
    value: float | None
    params: dict
    minutes: float
    reason: str = ""


def open_study(storage: str, name: str, seed: int = 0) -> optuna.Study:
    """The study ``name`` in ``storage`` (created, or loaded to continue it), maximising the Dice."""
    if storage.startswith("sqlite:"):  # several processes on one SQLite file: wait for its lock, do not fail
        storage = optuna.storages.RDBStorage(storage, engine_kwargs={"connect_args": {"timeout": 120}})
    return optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                               sampler=optuna.samplers.TPESampler(seed=seed),
                               pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))


def suggest(trial: optuna.Trial, params: tuple[str, ...]) -> dict:
    """The trial's overrides for the planner."""
    out = {}
    for name in params:
        kind, *spec = SPACE[name]
        if kind == "int":
            out[name] = trial.suggest_int(name, spec[0], spec[1])
        elif kind in ("log", "float"):
            out[name] = trial.suggest_float(name, spec[0], spec[1], log=kind == "log")
        else:
            out[name] = trial.suggest_categorical(name, list(spec[0]))
    return out


#: cross-validation folds when too few slices are annotated to hold some out (each fold has 1/FOLDS of the time)
FOLDS = 3


def objective_for(volumes: list[AnnotatedVolume], table: LabelTable, device: str, trial_minutes: float,
                  params: tuple[str, ...], fixed: dict, output: str | None,
                  cancel: CancelToken | None = None, on_epoch: Callable | None = None,
                  build: dict | None = None) -> Callable:
    """The Optuna objective: train one configuration for ``trial_minutes``, report each epoch's Dice;
    ``build``: more arguments of build_trainer (a data set's validation cases and cache).

    With too few annotated slices for a validation split (one volume, fewer than the planner's 10), a trial
    is :data:`FOLDS` cross-validation folds over the annotated slices, each trained for its share of the
    minutes; its value is the folds' mean Dice (of the folds with one), reported to the pruner after each fold.
    The model written is then the best fold's: :func:`refit` trains the best configuration on every
    annotated slice.
    A stop (``cancel``) takes effect at the end of the running trial's current epoch."""
    def objective(trial: optuna.Trial) -> float:
        overrides = {**fixed, **suggest(trial, params)}
        start = time.monotonic()
        folds = [None]
        step = 0
        try:
            trainer = build_trainer(volumes, table, device, trial_minutes, overrides, **(build or {}))
            if not trainer.val_refs:
                annotated = len(trainer.train_refs)
                if annotated < 2 or build and build.get("val_cases") is not None:
                    raise UnetguiError("no validation slices: a search needs at least 2 annotated slices")
                folds = list(range(min(FOLDS, annotated)))
                trial.set_user_attr("folds", len(folds))
            scores, best_model, best_score = [], None, -math.inf
            for i, fold in enumerate(folds):
                if fold is not None:
                    trainer = build_trainer(volumes, table, device, trial_minutes / len(folds), overrides,
                                            **(build or {}), fold=(fold, len(folds)))
                # the trial's minutes include its preparation (planning, caching, timing steps): the
                # training gets what is left of this fold's share, so a trial keeps to its budget
                share = trial_minutes * (i + 1) / len(folds) - (time.monotonic() - start) / 60
                trainer.config = replace(trainer.config, minutes=max(share, 0.05))
                best = -math.inf
                for event in trainer.run():  # not cancelled within an epoch: the check comes after each
                    if not isinstance(event, EpochStats):
                        continue
                    if event.mean_dice is not None:
                        best = max(best, event.mean_dice)
                        if on_epoch is not None:
                            on_epoch(trial.number, event)
                        if fold is None:  # one split: every epoch's Dice goes to the pruner
                            step += 1
                            trial.report(event.mean_dice, step)
                            if trial.should_prune():
                                raise optuna.TrialPruned()
                    check(cancel)
                scores.append(best)
                if best > best_score:
                    best_model, best_score = trainer.best_checkpoint(), best
                if fold is not None:  # folds: the mean of the folds so far, once per fold (steps 1..FOLDS)
                    done = [v for v in scores if math.isfinite(v)]
                    if done:
                        trial.report(sum(done) / len(done), len(scores))
                        if trial.should_prune():
                            raise optuna.TrialPruned()
        except optuna.TrialPruned:
            trial.set_user_attr("minutes", (time.monotonic() - start) / 60)
            raise
        except Cancelled:  # the user stopped the search: this trial ends as pruned, run() stops the study
            trial.set_user_attr("minutes", (time.monotonic() - start) / 60)
            trial.set_user_attr("reason", "stopped by the user")
            raise optuna.TrialPruned() from None
        except (UnetguiError, RuntimeError, MemoryError, ValueError) as exc:  # recorded; the search goes on
            trial.set_user_attr("reason", " ".join(str(exc).split())[:300] or type(exc).__name__)
            trial.set_user_attr("minutes", (time.monotonic() - start) / 60)
            raise
        finite = [v for v in scores if math.isfinite(v)]  # a fold whose validation slices hold no structure has none
        if best_model is None or not finite:
            trial.set_user_attr("minutes", (time.monotonic() - start) / 60)
            trial.set_user_attr("reason", "no validation Dice within the trial's minutes")
            raise UnetguiError("no validation Dice within the trial's minutes")
        value = sum(finite) / len(finite)
        trial.set_user_attr("minutes", (time.monotonic() - start) / 60)
        trial.set_user_attr("overrides", {k: v for k, v in overrides.items() if k in params})
        if output is not None and _is_best(trial, value):
            model_file.save(best_model, output)
        return value
    return objective


def needs_refit(study: optuna.Study) -> bool:
    """Whether the best trial was cross-validated (its model trained on a fold) and not yet refitted."""
    try:
        best = study.best_trial
    except ValueError:
        return False
    return bool(best.user_attrs.get("folds")) and study.user_attrs.get("refit_of") != best.number


def refit(study: optuna.Study, volumes: list[AnnotatedVolume], table: LabelTable, device: str, minutes: float,
          fixed: dict, output: str, cancel: CancelToken | None = None, build: dict | None = None,
          on_epoch: Callable | None = None) -> None:
    """Train the best trial's configuration on every annotated slice for ``minutes`` and write it to
    ``output`` (after a cross-validated search, whose trials' models each saw a fold's slices only)."""
    best = study.best_trial
    overrides = {**fixed, **best.user_attrs.get("overrides", best.params)}
    trainer = build_trainer(volumes, table, device, minutes, overrides, **(build or {}))
    for event in trainer.run(cancel):
        if on_epoch is not None and isinstance(event, EpochStats):
            on_epoch(best.number, event)
    model_file.save(trainer.best_checkpoint(), output)
    study.set_user_attr("refit_of", best.number)


def _is_best(trial: optuna.Trial, value: float) -> bool:
    try:
        return value > trial.study.best_value
    except ValueError:  # no completed trial yet
        return True


def run(study: optuna.Study, objective: Callable, trials: int | None, minutes: float | None,
        cancel: CancelToken | None = None, on_trial: Callable[[TrialResult], None] | None = None) -> None:
    """Optimise until ``trials`` more trials ran or ``minutes`` passed (or ``cancel``); failed trials
    are recorded and the search goes on; ``on_trial`` is told each finished trial."""
    def after_trial(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(next(r for r in results(study_) if r.number == trial.number))
        try:
            check(cancel)
        except Cancelled:
            study_.stop()

    study.optimize(objective, n_trials=trials, timeout=minutes * 60 if minutes else None,
                   catch=(UnetguiError, RuntimeError, MemoryError, ValueError), callbacks=[after_trial],
                   gc_after_trial=True)


def results(study: optuna.Study) -> list[TrialResult]:
    states = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned",
              optuna.trial.TrialState.FAIL: "failed", optuna.trial.TrialState.RUNNING: "running"}
    return [TrialResult(t.number, states.get(t.state, t.state.name.lower()), t.value, dict(t.params),
                        float(t.user_attrs.get("minutes", 0.0)), str(t.user_attrs.get("reason", "")))
            for t in study.trials]


def importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's parameter importances (empty until two trials completed with different values)."""
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
