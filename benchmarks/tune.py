"""Hyperparameter search against the planner (issue 15): `--minutes` of Optuna search (engine/tuning.py, trials
of `--trial-minutes`) beside the planner's default configuration trained for the same minutes, both scored
by Dice on slices neither saw.

    python benchmarks/tune.py --case isbi --annotated 12 --minutes 30 --trial-minutes 3 --out result.json

Cases: the ISBI 2012 stack of benchmarks/dev_cases.py (25 sections), with `--annotated` sections evenly
spread as the annotation (a search needs validation slices: at least 10 annotated slices), the others unseen;
or any other development case with its own annotated slices when it has 10 or more.
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


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred > 0, truth > 0
    return float(2 * (p & t).sum() / max(p.sum() + t.sum(), 1))


def main() -> None:
    import torch

    from dev_cases import load
    from unetgui.core.volume import UNANNOTATED, LabelTable
    from unetgui.engine import tuning
    from unetgui.engine.inference import Predictor
    from unetgui.engine.training_run import AnnotatedVolume, build_trainer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=Path(__file__).resolve().parent / ".cases")
    parser.add_argument("--case", default="isbi_k5")
    parser.add_argument("--annotated", type=int, default=12, help="sections annotated (ISBI), evenly spread")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--trial-minutes", type=float, default=3.0)
    parser.add_argument("--params", nargs="+", default=["depth", "base", "batch_size", "learning_rate"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case = load(args.cases, args.case, 0)
    z = case.image.shape[0]
    annotated = sorted({int(v) for v in np.linspace(0, z - 1, args.annotated).round()}) if args.case.startswith("isbi") \
        else list(case.annotated)
    unseen = [k for k in range(z) if k not in annotated]
    labels = np.full(case.truth.shape, UNANNOTATED, np.uint8)
    labels[annotated] = (case.truth[annotated] > 0).astype(np.uint8)
    volumes = [AnnotatedVolume(case.name, case.image, labels, case.modality, case.spacing_yx)]
    table = LabelTable.from_names("structure")
    fixed = {"threads": args.threads}

    def score(checkpoint) -> float:
        predicted = Predictor(checkpoint, device="cpu", threads=args.threads).predict(case.image, keep_probabilities=False)
        return _dice(predicted.labels[unseen], case.truth[unseen])

    with tempfile.TemporaryDirectory() as work:
        start = time.monotonic()
        study = tuning.open_study(f"sqlite:///{work}/study.db", "bench")
        output = f"{work}/best.unetgui"
        objective = tuning.objective_for(volumes, table, "cpu", args.trial_minutes, tuple(args.params), fixed, output)
        tuning.run(study, objective, None, args.minutes)
        search_minutes = (time.monotonic() - start) / 60
        from unetgui.engine import checkpoint as model_file

        tuned = score(model_file.load(output))
        rows = [{"trial": r.number, "state": r.state, "dice": r.value, "params": r.params} for r in tuning.results(study)]
        start = time.monotonic()
        trainer = build_trainer(volumes, table, "cpu", args.minutes, fixed)
        for _ in trainer.run():
            pass
        default_minutes = (time.monotonic() - start) / 60
        default = score(trainer.best_checkpoint())
    result = {"case": args.case, "annotated": annotated, "unseen": len(unseen), "minutes": args.minutes,
              "trial_minutes": args.trial_minutes, "search_minutes": round(search_minutes, 1),
              "default_minutes": round(default_minutes, 1), "tuned_dice_unseen": tuned, "default_dice_unseen": default,
              "best": {"trial": study.best_trial.number, "params": study.best_trial.params, "val_dice": study.best_value},
              "default_plan": trainer.plan.summary(), "trials": rows}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
