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
* A storage is checked before it is used (:func:`check_storage`: a URL, a database, not another program's
  tables), and a study is taken as ours only when it is (:func:`check_study`: marked by unetgui, or made by an
  older unetgui, with nothing but this search space in it); a model file says which study and trial it is
  (:func:`model_trial`), so a search never reports another's model as its own.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import quote

import optuna

from unetgui.core.errors import Cancelled, UnetguiError
from unetgui.core.limits import is_regular_file
from unetgui.core.progress import CancelToken, check
from unetgui.core.textsafe import printable
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


#: the study's user attribute that marks it as a unetgui search: {"format": MARK_FORMAT, "id": a random hex id}
MARK = "unetgui_search"
MARK_FORMAT = 1
#: tables that every Optuna RDB storage has; a database with other tables and not these is another program's
_OPTUNA_TABLES = {"studies", "version_info"}


def shown_url(url: str) -> str:
    """``url`` safe to print: its password hidden, control characters escaped."""
    try:
        from sqlalchemy.engine import make_url

        return printable(make_url(url).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - not a URL at all: shown as given, less anything like a password
        return printable(re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", str(url)))


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip() and not line.startswith("(Background")]
    return printable(f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": "), 300)


def check_storage(url: str) -> None:
    """Raise a one-line :class:`UnetguiError` unless ``url`` is a database URL that Optuna can use: a driver
    that is installed, a server that answers, an SQLite file that is new (in an existing folder), empty, or an
    SQLite database without tables of another program. Reads only: nothing is created or written."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    shown = shown_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy's ArgumentError, or a ValueError of a port
        raise UnetguiError(f"storage {shown}: not a database URL (e.g. sqlite:///tune.db or "
                           f"postgresql://user@host/db): {_first_line(exc)}") from exc
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(parsed.database, shown)
        return
    try:
        engine = create_engine(parsed)
        try:
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except ImportError as exc:
        raise UnetguiError(f"storage {shown}: the database driver is not installed ({_first_line(exc)})") from exc
    except Exception as exc:  # noqa: BLE001 - sqlalchemy's errors: no such dialect, refused, wrong password
        raise UnetguiError(f"storage {shown}: cannot use this database ({_first_line(exc)})") from exc
    _check_tables(tables, shown)


def _check_sqlite(path: str | None, shown: str) -> None:
    if not path or path == ":memory:" or path.startswith("file:"):
        return  # an in-memory database; a file: URI is SQLite's own business
    if not os.path.exists(path):
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UnetguiError(f"storage {shown}: the folder {printable(folder)} does not exist")
        if not os.access(folder, os.W_OK):
            raise UnetguiError(f"storage {shown}: the folder {printable(folder)} is not writable")
        return
    if not is_regular_file(path):
        raise UnetguiError(f"storage {shown}: {printable(path)} is not a regular file")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if not head:
            return  # an empty file: SQLite makes it a new database
        if head != b"SQLite format 3\x00":
            raise UnetguiError(f"storage {shown}: {printable(path)} is not an SQLite database")
        connection = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, timeout=120)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except UnetguiError:
        raise
    except (OSError, sqlite3.Error) as exc:
        raise UnetguiError(f"storage {shown}: {printable(path)} cannot be read as a database ({_first_line(exc)})") from exc
    _check_tables(tables, shown)


def _check_tables(tables: set[str], shown: str) -> None:
    if tables and not _OPTUNA_TABLES <= tables:
        listed = ", ".join(printable(t, 40) for t in sorted(tables)[:4])
        raise UnetguiError(f"storage {shown}: a database of another program (tables {listed}"
                           f"{', ...' if len(tables) > 4 else ''}), not an Optuna storage; give a new file or database")


def open_study(storage: str, name: str, seed: int = 0) -> optuna.Study:
    """The study ``name`` in ``storage`` (created, or loaded to continue it), maximising the Dice.

    Raises a one-line :class:`UnetguiError`, before anything is written, when the storage is not usable
    (:func:`check_storage`) or the study there is not a unetgui search (:func:`check_study`)."""
    check_storage(storage)
    shown = shown_url(storage)
    try:
        kwargs = {"connect_args": {"timeout": 120}} if storage.startswith("sqlite:") else {}
        # several processes on one SQLite file: wait for its lock, do not fail
        rdb = optuna.storages.RDBStorage(storage, engine_kwargs=kwargs)
        study = optuna.create_study(storage=rdb, study_name=name, direction="maximize", load_if_exists=True,
                                    sampler=optuna.samplers.TPESampler(seed=seed),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
        check_study(study, shown)
    except UnetguiError:
        raise
    except Exception as exc:  # noqa: BLE001 - sqlalchemy's and Optuna's errors (a schema of another version, ...)
        raise UnetguiError(f"storage {shown}: cannot open study {printable(name)!r} ({_first_line(exc)})") from exc
    return study


def check_study(study: optuna.Study, shown: str = "") -> None:
    """Raise a one-line :class:`UnetguiError` unless ``study`` is a unetgui search: it maximises one value, and
    it is marked as ours (:data:`MARK`) or, unmarked, every completed trial carries the settings that
    unetgui records ("overrides"); every trial's parameters and settings are within :data:`SPACE` and every
    completed trial's value is a Dice (0..1). An unmarked study that passes (new and empty, or made by an
    older unetgui) is marked."""
    where = f"storage {shown}: study {printable(study.study_name)!r}"
    advice = "; give another study name (--study) or storage"
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UnetguiError(f"{where} is not a unetgui search (it does not maximise one value){advice}")
    mark = study.user_attrs.get(MARK)
    if mark is not None:
        if not isinstance(mark, dict) or not isinstance(mark.get("format"), int) or not isinstance(mark.get("id"), str):
            raise UnetguiError(f"{where} is not a unetgui search (its {MARK} attribute is not unetgui's){advice}")
        if mark["format"] > MARK_FORMAT:
            raise UnetguiError(f"{where} was made by a newer unetgui (format {mark['format']}); update unetgui")
    for trial in study.get_trials(deepcopy=False):
        problem = _trial_problem(trial, marked=mark is not None)
        if problem:
            raise UnetguiError(f"{where} is not a unetgui search: trial {trial.number} {problem}{advice}")
    if mark is None:
        study.set_user_attr(MARK, {"format": MARK_FORMAT, "id": uuid.uuid4().hex})


def _trial_problem(trial: optuna.trial.FrozenTrial, marked: bool) -> str:
    """What makes ``trial`` foreign to a unetgui search, or ""."""
    unknown = sorted(set(trial.params) - set(SPACE))
    if unknown:
        return f"has parameters {printable(unknown[:4], 80)} that unetgui does not search"
    if not valid_overrides(trial.params):
        return "has parameter values outside unetgui's search space"
    if trial.state != optuna.trial.TrialState.COMPLETE:
        return ""
    overrides = trial.user_attrs.get("overrides")
    if overrides is None and not marked:
        return "has no settings recorded by unetgui"
    if overrides is not None and not valid_overrides(overrides):
        return "has settings outside unetgui's search space"
    if not isinstance(trial.value, (int, float)) or not 0.0 <= trial.value <= 1.0:
        return "has a value that is not a Dice (0..1)"
    return ""


def valid_overrides(overrides: object) -> bool:
    """Whether ``overrides`` is a dict of searched settings (names of :data:`SPACE`) with values in its ranges:
    what a best.json may hold for ``unetgui train --config``."""
    if not isinstance(overrides, dict):
        return False
    for name, value in overrides.items():
        if name not in SPACE or isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        kind, *spec = SPACE[name]
        if kind == "choice":
            if value not in spec[0]:
                return False
        elif kind == "int":
            if not isinstance(value, int) or not spec[0] <= value <= spec[1]:
                return False
        elif not (math.isfinite(value) and spec[0] * (1 - 1e-9) <= value <= spec[1] * (1 + 1e-9)):
            return False
    return True


def best_overrides(study: optuna.Study) -> dict:
    """The best trial's searched settings, checked (:func:`valid_overrides`); a one-line
    :class:`UnetguiError` when they are not unetgui's (another program wrote into the study)."""
    best = study.best_trial
    overrides = best.user_attrs.get("overrides", best.params)
    if not valid_overrides(overrides):
        raise UnetguiError(f"study {printable(study.study_name)!r}: the best trial ({best.number}) holds settings that "
                           "are not unetgui's; nothing was written")
    return dict(overrides)


def study_id(study: optuna.Study) -> str:
    """The random id that marks ``study`` (:data:`MARK`); "" for an unmarked one."""
    mark = study.user_attrs.get(MARK)
    return str(mark.get("id", "")) if isinstance(mark, dict) else ""


def _stamped(checkpoint, study: optuna.Study, trial: int, refit: bool = False):
    """``checkpoint`` with the study and trial it comes from in its info (read back by :func:`model_trial`)."""
    return replace(checkpoint, info={**checkpoint.info, "tune": {"study": study_id(study), "trial": trial,
                                                                 "refit": refit}})


def model_trial(path: str) -> dict | None:
    """The ``{"study", "trial", "refit"}`` stamp of the model file ``path`` written by a search (from its header
    alone); None when there is no such file or it carries none."""
    if not is_regular_file(path):
        return None
    try:
        from safetensors import safe_open

        with safe_open(path, framework="np") as f:
            header = f.metadata() or {}
        stamp = json.loads(header.get("unetgui", "{}")).get("info", {}).get("tune")
    except Exception:  # noqa: BLE001 - a damaged or foreign file carries no stamp
        return None
    return stamp if isinstance(stamp, dict) else None


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
            if not trainer.val_refs:  # cross-validation over the complete slices (strokes train in every fold)
                annotated = sum(len(c.complete) for c in trainer.cases)
                if annotated < 2 or build and build.get("val_cases") is not None:
                    raise UnetguiError("no validation slices: a search needs at least 2 completely annotated "
                                       "slices (reviewed, R; strokes alone cannot measure a trial)")
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
            model_file.save(_stamped(best_model, trial.study, trial.number), output)
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
    overrides = {**fixed, **best_overrides(study)}
    trainer = build_trainer(volumes, table, device, minutes, overrides, **(build or {}))
    for event in trainer.run(cancel):
        if on_epoch is not None and isinstance(event, EpochStats):
            on_epoch(best.number, event)
    model_file.save(_stamped(trainer.best_checkpoint(), study, best.number, refit=True), output)
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
