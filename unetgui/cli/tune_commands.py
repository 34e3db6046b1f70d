"""``unetgui tune``: hyperparameter search on Optuna (engine/tuning.py), resumable and shared through its
storage; writes the best trial's model, a table of trials (CSV), the best configuration as JSON (which
``unetgui train --config`` takes) and Optuna's parameter importances."""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys

from unetgui.cli.outputs import check_writable, write_json
from unetgui.core import atomic, csvcell
from unetgui.core.errors import UnetguiError

DEFAULT_TRIAL_MINUTES = 2.0
# the search space's names (engine/tuning.py SPACE; kept here so that the parser does not import torch)
PARAMS = ("depth", "base", "batch_size", "patch", "learning_rate", "weight_decay", "context", "kernel", "dice_weight",
          "augment_strength")
DEFAULT_PARAMS = ("depth", "base", "batch_size", "learning_rate")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tune = sub.add_parser("tune", help="search the training's hyperparameters (Optuna); resumable, several "
                          "processes can share one --storage")
    tune.add_argument("--images", action="append", help="as for train (repeat for several cases)")
    tune.add_argument("--labels", action="append", help="as for train (one per --images)")
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
    tune.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    tune.add_argument("--threads", type=int, help="CPU threads per trial")
    tune.set_defaults(run=_tune)


def _tune(args: argparse.Namespace) -> int:
    from unetgui.cli.engine_commands import _check_table, _label_table, dataset_volumes
    from unetgui.engine import tuning
    from unetgui.engine.training_run import AnnotatedVolume
    from unetgui.formats.inputs import open_image, open_labels

    if args.trials is None and args.minutes is None:
        raise UnetguiError("give --trials N or --minutes M (or both)")
    if args.dataset and (args.images or args.labels):
        raise UnetguiError("give either --dataset, or --images with --labels")
    if not args.dataset and not (args.images and args.labels and len(args.images) == len(args.labels)):
        raise UnetguiError("give --images and --labels (one per image), or --dataset")
    if not args.trial_minutes > 0:
        raise UnetguiError("--trial-minutes must be positive")
    check_writable(args.output, "--output")
    base = os.path.splitext(os.path.abspath(args.output))[0]
    storage = args.storage or f"sqlite:///{base}.optuna.db"
    fixed = {"seed": args.seed, "threads": args.threads}
    build = {}
    if args.dataset:
        dataset, splits, volumes, table, root = dataset_volumes(args, None)
        build = {"val_cases": list(range(len(splits["train"]), len(volumes))), "cache_root": root}
    else:
        images = [open_image(p) for p in args.images]
        maps = [open_labels(lab, im)[0] for lab, im in zip(args.labels, images)]
        table = _label_table(maps)
        _check_table(table, {v for lm in maps for v in lm.used_values()}, None)
        volumes = [AnnotatedVolume(os.path.basename(os.path.normpath(p)), im.volume.voxels, lm.labels,
                                   im.volume.modality, tuple(im.volume.spacing[1:]))
                   for p, im, lm in zip(args.images, images, maps)]
    study = tuning.open_study(storage, args.study, args.seed)
    before = len(study.trials)
    print(f"study {args.study!r} in {storage}: {before} trial(s) so far; searching {', '.join(args.params)}, "
          f"{args.trial_minutes:g} min per trial", flush=True)

    def on_epoch(number, event) -> None:
        print(f"trial {number} epoch {event.epoch}: Dice {event.mean_dice:.4f}", flush=True)

    objective = tuning.objective_for(volumes, table, args.device, args.trial_minutes, tuple(args.params), fixed,
                                     args.output, on_epoch=on_epoch, build=build)
    tuning.run(study, objective, args.trials, args.minutes)
    if tuning.needs_refit(study):
        print(f"the trials were cross-validated over the annotated slices: training the best configuration on all "
              f"of them ({args.trial_minutes:g} min)", flush=True)
        tuning.refit(study, volumes, table, args.device, args.trial_minutes, fixed, args.output, build=build)
    _report(study, args, base)
    return 0


def _report(study, args: argparse.Namespace, base: str) -> None:
    from unetgui.engine import tuning

    rows = tuning.results(study)
    names = sorted({k for r in rows for k in r.params})
    print(f"{'trial':>5} {'state':<9} {'Dice':>7} {'min':>5}  " + "  ".join(names))
    for r in rows:
        value = f"{r.value:7.4f}" if r.value is not None and math.isfinite(r.value) else f"{'-':>7}"
        params = "  ".join(f"{r.params.get(n, '-'):.3g}" if isinstance(r.params.get(n), float) else str(r.params.get(n, "-"))
                           for n in names)
        print(f"{r.number:5d} {r.state:<9} {value} {r.minutes:5.1f}  {params}{'  ' + r.reason if r.reason else ''}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["trial", "state", "dice", "minutes", *names, "reason"])
    for r in rows:
        writer.writerow([r.number, r.state, "" if r.value is None else f"{r.value:.6f}", f"{r.minutes:.2f}",
                         *[r.params.get(n, "") for n in names], csvcell.escape(r.reason)])
    atomic.write_bytes(f"{base}.trials.csv", out.getvalue().encode("utf-8"))
    complete = [r for r in rows if r.state == "complete" and r.value is not None]
    if not complete:
        print("no trial completed yet: no best configuration", file=sys.stderr)
        return
    best = study.best_trial
    importances = tuning.importances(study)
    write_json(f"{base}.best.json", {"study": args.study, "trial": best.number, "dice": best.value,
                                     "overrides": best.user_attrs.get("overrides", best.params),
                                     "importances": importances})
    print(f"best: trial {best.number}, Dice {best.value:.4f}: {best.params}")
    if importances:
        print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    what = "the best configuration trained on every annotated slice" if best.user_attrs.get("folds") else "the best trial's model"
    print(f"wrote {args.output} ({what}), {base}.best.json (train --config takes it), {base}.trials.csv")
