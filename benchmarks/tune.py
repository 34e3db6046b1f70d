"""Hyperparameter search against the planner (issue 15): `--minutes` of Optuna search (engine/tuning.py, trials
of `--trial-minutes`) against the planner's default configuration trained for the same minutes, each scored by
Dice on slices no run saw. One arm per process, so that arms run side by side on one thread each (the same load):

    python benchmarks/tune.py search  --case isbi_k5 --annotated 12 --minutes 30 --trial-minutes 3 --out s.json
    python benchmarks/tune.py default --case isbi_k5 --annotated 12 --minutes 30 --out d.json
    python benchmarks/tune.py best    --case isbi_k5 --annotated 12 --minutes 30 --config s.json --out b.json
    python benchmarks/tune.py table s.json d.json b.json

* ``search``: the study (a fresh SQLite file) for ``--minutes``; the model scored is what `unetgui tune` writes:
  the best trial's, or, when the trials were cross-validated (fewer than 10 annotated slices), the best
  configuration refitted on every annotated slice for ``--trial-minutes``.
* ``default``: the planner's configuration trained for ``--minutes``.
* ``best``: the best configuration of a search (``--config``: its JSON) trained for ``--minutes``.

Cases (benchmarks/dev_cases.py): the ISBI 2012 stack (25 sections) with ``--annotated`` sections evenly spread
as the annotation and the others unseen; or a few-shot development case (``mr_small``, ``tiny``, ``phantom``,
``dcmqi``; ``--seed`` picks the synthetic ones' volume) with its own annotated slices.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fewshot import _dice  # noqa: E402 - the foreground Dice the few-shot benchmark scores with


def _setup(args):
    from dev_cases import load
    from unetgui.core.volume import UNANNOTATED, LabelTable
    from unetgui.engine.training_run import AnnotatedVolume

    case = load(args.cases, args.case, args.seed)
    z = case.image.shape[0]
    if args.case.startswith("isbi"):
        annotated = sorted({int(v) for v in np.linspace(0, z - 1, args.annotated).round()})
    else:
        annotated = list(case.annotated)
    unseen = [k for k in range(z) if k not in annotated]
    labels = np.full(case.truth.shape, UNANNOTATED, np.uint8)
    labels[annotated] = (case.truth[annotated] > 0).astype(np.uint8)
    volumes = [AnnotatedVolume(case.name, case.image, labels, case.modality, case.spacing_yx)]
    return case, annotated, unseen, volumes, LabelTable.from_names("structure")


def _score(checkpoint, case, unseen, threads: int) -> float:
    from unetgui.engine.inference import Predictor

    predicted = Predictor(checkpoint, device="cpu", threads=threads).predict(case.image, keep_probabilities=False)
    return _dice(predicted.labels[unseen], case.truth[unseen])


def _train(volumes, table, minutes: float, overrides: dict):
    from unetgui.engine.training_run import build_trainer

    trainer = build_trainer(volumes, table, "cpu", minutes, overrides)
    for _ in trainer.run():
        pass
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arm", choices=["search", "default", "best", "table"])
    parser.add_argument("files", nargs="*", type=Path, help="table: the arms' JSON files")
    parser.add_argument("--cases", type=Path, default=Path(__file__).resolve().parent / ".cases")
    parser.add_argument("--case", default="isbi_k5")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic case's volume, and the runs' seed")
    parser.add_argument("--annotated", type=int, default=12, help="sections annotated (ISBI), evenly spread")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--trial-minutes", type=float, default=3.0)
    parser.add_argument("--params", nargs="+", default=["depth", "base", "batch_size", "learning_rate"])
    parser.add_argument("--config", type=Path, help="best: a search arm's JSON")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.arm == "table":
        return _table(args.files)
    import torch

    torch.set_num_threads(args.threads)
    case, annotated, unseen, volumes, table = _setup(args)
    fixed = {"threads": args.threads, "seed": args.seed}
    result = {"arm": args.arm, "case": case.name, "annotated": annotated, "unseen": len(unseen), "minutes": args.minutes,
              "threads": args.threads}
    start = time.monotonic()
    if args.arm == "search":
        from unetgui.engine import checkpoint as model_file
        from unetgui.engine import tuning

        with tempfile.TemporaryDirectory() as work:
            study = tuning.open_study(f"sqlite:///{work}/study.db", "bench", args.seed)
            output = f"{work}/best.unetgui"
            objective = tuning.objective_for(volumes, table, "cpu", args.trial_minutes, tuple(args.params), fixed, output)
            tuning.run(study, objective, None, args.minutes)
            refit = tuning.needs_refit(study)
            if refit:
                tuning.refit(study, volumes, table, "cpu", args.trial_minutes, fixed, output)
            dice = _score(model_file.load(output), case, unseen, args.threads)
        best = study.best_trial
        result.update(trial_minutes=args.trial_minutes, refit=refit, dice_unseen=dice,
                      best={"trial": best.number, "overrides": best.user_attrs.get("overrides", best.params),
                            "val_dice": best.value, "folds": best.user_attrs.get("folds")},
                      trials=[{"trial": r.number, "state": r.state, "dice": r.value, "minutes": round(r.minutes, 2),
                               "params": r.params} for r in tuning.results(study)])
    else:
        overrides = dict(fixed)
        if args.arm == "best":
            overrides.update(json.loads(args.config.read_text())["best"]["overrides"])
        trainer = _train(volumes, table, args.minutes, overrides)
        result.update(dice_unseen=_score(trainer.best_checkpoint(), case, unseen, args.threads),
                      plan=trainer.plan.summary(), overrides={k: v for k, v in overrides.items() if k not in fixed})
    result["wall_minutes"] = round((time.monotonic() - start) / 60, 1)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


def _table(files: list[Path]) -> None:
    print("| case | run | training | Dice on unseen slices |\n|---|---|---|---|")
    for path in files:
        r = json.loads(path.read_text())
        if r["arm"] == "search":
            counts = {s: sum(t["state"] == s for t in r["trials"]) for s in ("complete", "pruned", "failed")}
            how = (f"best configuration refitted on all {len(r['annotated'])} slices for {r['trial_minutes']:g} min"
                   if r["refit"] else f"its best trial ({r['trial_minutes']:g} min)")
            run = (f"search, {r['minutes']:g} min: {len(r['trials'])} trials ({counts['complete']} complete, "
                   f"{counts['pruned']} pruned, {counts['failed']} failed); best {r['best']['overrides']}")
            print(f"| {r['case']} | {run} | {how} | {r['dice_unseen']:.3f} |")
        else:
            run = "planner's defaults" if r["arm"] == "default" else f"best configuration {r['overrides']}"
            print(f"| {r['case']} | {run} | {r['minutes']:g} min | {r['dice_unseen']:.3f} |")


if __name__ == "__main__":
    main()
