"""ISBI 2012 with many annotated sections: does elastic deformation or weight averaging help against
overfitting? Sections 0-19 train (the planner holds out every ~6th for validation), 20-24 are never seen.
Runs the variants side by side (one process each) on one device; prints the misclassified-pixel rate and
the membrane Dice on the unseen sections.

    python benchmarks/isbi_ablation.py --cases benchmarks/.cases --device cuda --minutes 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
VARIANTS = {"planned": {}, "no-elastic": {"elastic": False}, "no-ema": {"ema": 0}}


def run(cases: Path, device: str, minutes: float, variant: str, threads: int) -> dict:
    from unetgui.core.volume import LabelTable
    from unetgui.engine.inference import Predictor
    from unetgui.engine.training_run import AnnotatedVolume, build_trainer

    with np.load(cases / "isbi_k5.npz") as f:
        image, truth = f["image"], f["truth"]
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[:20] = truth[:20]
    overrides = {"threads": threads, **VARIANTS[variant]}
    trainer = build_trainer([AnnotatedVolume("isbi", image, sparse)], LabelTable.from_names("membrane"), device,
                            minutes, overrides)
    epochs = [e for e in trainer.run() if hasattr(e, "val_dice")]
    labels = Predictor(trainer.best_checkpoint(), device=device).predict(image).labels[20:]
    p, t = labels > 0, truth[20:] > 0
    return {"variant": variant, "misclassified": float((p != t).mean()), "dice": float(2 * (p & t).sum() / (p.sum() + t.sum())),
            "epochs": len(epochs), "best_epoch": trainer.best_epoch, "plan": trainer.plan.summary(),
            "val_dice_last": epochs[-1].mean_dice if epochs else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=Path(__file__).resolve().parent / ".cases")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run(args.cases, args.device, args.minutes, args.variant, args.threads)), flush=True)
        return
    procs = [subprocess.Popen([sys.executable, __file__, "--cases", str(args.cases), "--device", args.device, "--minutes",
                               str(args.minutes), "--threads", str(args.threads), "--variant", v], stdout=subprocess.PIPE,
                              text=True) for v in VARIANTS]
    for proc in procs:
        out, _ = proc.communicate()
        print(out.strip().splitlines()[-1] if out.strip() else f"failed: {proc.args}", flush=True)


if __name__ == "__main__":
    main()
