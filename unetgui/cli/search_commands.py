"""``unetgui tune``: argument parsing and printing around tasks/search.py (a hyperparameter search on
Optuna, resumable and shared through its storage)."""

from __future__ import annotations

import argparse
import math
import sys

from unetgui.cli.common import add_device, add_series, command, warn
from unetgui.cli.common import show as show_line
from unetgui.cli.outputs import check_writable
from unetgui.cli.progress import ProgressLine
from unetgui.core.errors import UnetguiError
from unetgui.core.textsafe import printable
from unetgui.tasks.search import DEFAULT_PARAMS, DEFAULT_TRIAL_MINUTES, PARAMS, SearchStarted, TrialEpoch  # torch-free


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tune = command(sub, "tune", "search the training's hyperparameters (Optuna); resumable, several processes can "
                   "share one --storage", [
                       "unetgui tune --images ct/ --labels liver.nii.gz --output tuned.unetgui --minutes 60",
                       "unetgui tune --dataset Task03_Liver/ --output tuned.unetgui --trials 20 "
                       "--storage postgresql://host/db"])
    tune.add_argument("--images", action="append", help="as for train (repeat for several cases)")
    tune.add_argument("--labels", action="append", help="as for train (one per --images)")
    add_series(tune, "every --images folder")
    tune.add_argument("--dataset", help="as for train --dataset (the search uses its training and validation cases)")
    tune.add_argument("--test-fraction", type=float, default=0.2, help="with --dataset: as for train")
    tune.add_argument("--cache", help="with --dataset: as for train")
    tune.add_argument("--output", required=True, help="the best trial's model (.unetgui)")
    tune.add_argument("--trials", type=int, help="trials to run in this process (default: until --minutes)")
    tune.add_argument("--minutes", type=float, help="wall-clock budget of the search in this process")
    tune.add_argument("--trial-minutes", type=float, default=DEFAULT_TRIAL_MINUTES,
                      help=f"training budget of each trial (default {DEFAULT_TRIAL_MINUTES:g})")
    tune.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<output>.optuna.db next to --output; "
                      "a postgresql:// or mysql:// URL shares a study across machines)")
    tune.add_argument("--study", default="unetgui", help="study name in the storage (default unetgui)")
    tune.add_argument("--params", nargs="+", default=list(DEFAULT_PARAMS), choices=PARAMS,
                      help=f"what to search (default: {' '.join(DEFAULT_PARAMS)})")
    tune.add_argument("--seed", type=int, default=0, help="the split and the sampler's seed")
    add_device(tune)
    tune.add_argument("--threads", type=int, help="CPU threads per trial")
    tune.set_defaults(run=_tune)


def _tune(args: argparse.Namespace) -> int:
    from unetgui.cli.train_commands import source_of
    from unetgui.tasks.search import SearchRequest, search

    if args.trials is None and args.minutes is None:
        raise UnetguiError("give --trials N or --minutes M (or both)")
    if not args.trial_minutes > 0:
        raise UnetguiError("--trial-minutes must be positive")
    source = source_of(args)
    check_writable(args.output, "--output")
    request = SearchRequest(args.output, tuple(args.params), args.trial_minutes, args.minutes, args.trials, args.storage,
                            args.study, args.seed, args.threads, args.device)

    def show(event) -> None:
        if isinstance(event, SearchStarted):
            for note in event.notes:
                warn([note])
            if event.summary:
                show_line(event.summary)
            print(f"study {event.study!r} in {event.storage}: {event.before} trial(s) so far; searching "
                  f"{', '.join(args.params)}, {args.trial_minutes:g} min per trial", flush=True)
        elif isinstance(event, TrialEpoch):
            print(f"trial {event.trial if event.trial >= 0 else 'refit'} epoch {event.epoch}: Dice {event.dice:.4f}", flush=True)
        elif event == "refit":
            print(f"the trials were cross-validated over the annotated slices: training the best configuration on all "
                  f"of them ({args.trial_minutes:g} min)", flush=True)

    result = search(request, source, progress=ProgressLine("reading"), emit=show)
    rows = result.trials
    names = sorted({k for r in rows for k in r.params})
    print(f"{'trial':>5} {'state':<9} {'Dice':>7} {'min':>5}  " + "  ".join(names))
    for r in rows:  # the study's trials may come from other processes: what they recorded is shown escaped
        value = f"{r.value:7.4f}" if r.value is not None and math.isfinite(r.value) else f"{'-':>7}"
        params = "  ".join(f"{r.params.get(n, '-'):.3g}" if isinstance(r.params.get(n), float) else str(r.params.get(n, "-"))
                           for n in names)
        print(f"{r.number:5d} {printable(r.state):<9} {value} {r.minutes:5.1f}  {params}"
              f"{'  ' + printable(r.reason) if r.reason else ''}")
    if result.best_trial is None:
        print("no trial completed yet: no best configuration", file=sys.stderr)
        return 0
    print(f"best: trial {result.best_trial}, Dice {result.dice:.4f}: {result.params}")
    if result.importances:
        print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in result.importances.items()))
    notes = {f"{request.base}.best.json": "train --config takes it", args.output: (
        "the best configuration trained on every annotated slice" if result.refit else "the best trial's model")}
    print("wrote " + ", ".join(f"{path} ({notes[path]})" if path in notes else path for path in result.written))
    if result.model is None:  # never claim a model that this search did not write
        print(f"no model: {result.how}", file=sys.stderr)
    return 0
