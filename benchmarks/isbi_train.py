"""Train on ISBI 2012 (the U-Net paper's data) with the `unetgui` CLI on the CPU, then test on held-out slices.

Slices 0-19 of ../shared/data/isbi2012-membrane are the training data (the CLI holds out every ~6th of
them for validation and prints validation Dice and pixel error per epoch); slices 20-24 are never seen
and are segmented with `unetgui predict`, then scored with `unetgui evaluate`. Label 1 = membrane.

Usage: python benchmarks/isbi_train.py [--minutes 10] [--schedule poly|cosine] [--out DIR]
Goal (issue 3): pixel error <= 0.06 on held-out slices (the paper reports 0.0611 on the ISBI test set).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012-membrane" / "train"
TRAIN, TEST = range(0, 20), range(20, 25)


def _write_split(root: Path) -> None:
    for part, ids in (("train", TRAIN), ("test", TEST)):
        (root / part / "images").mkdir(parents=True)
        (root / part / "membrane").mkdir(parents=True)
        for i in ids:
            os.symlink(DATA / "image" / f"{i}.png", root / part / "images" / f"{i}.png")
            raw = cv2.imread(str(DATA / "label" / f"{i}.png"), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(root / part / "membrane" / f"{i}.png"), np.where(raw < 128, 255, 0).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--schedule", default="poly", choices=["poly", "cosine"])
    parser.add_argument("--out", help="keep the model and predictions here")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="isbi_"))
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "train").exists():
        _write_split(root)
    unetgui = [sys.executable, "-m", "unetgui"]
    start = time.monotonic()
    subprocess.run([*unetgui, "train", "--images", str(root / "train" / "images"), "--labels",
                    str(root / "train" / "membrane"), "--output", str(root / "isbi.unetgui"), "--device", "cpu",
                    "--minutes", str(args.minutes), "--working-size", "0", "--patch", "256", "--batch-size", "4",
                    "--steps-per-epoch", "25", "--schedule", args.schedule], check=True)
    print(f"training wall time {time.monotonic() - start:.0f} s")
    subprocess.run([*unetgui, "predict", "--model", str(root / "isbi.unetgui"), "--input", str(root / "test" / "images"),
                    "--output", str(root / "test" / "pred"), "--device", "cpu"], check=True)
    subprocess.run([*unetgui, "evaluate", "--prediction", str(root / "test" / "pred"), "--truth",
                    str(root / "test" / "membrane"), "--json", str(root / "test" / "metrics.json")], check=True)
    names = [f"{i}.png" for i in TEST]
    pred = np.stack([cv2.imread(str(root / "test" / "pred" / n), cv2.IMREAD_UNCHANGED) for n in names])
    truth = np.stack([(cv2.imread(str(root / "test" / "membrane" / n), cv2.IMREAD_GRAYSCALE) > 0) for n in names])
    error = float(np.mean((pred == 1) != truth))
    print(f"held-out slices 20-24: pixel error {error:.4f} (goal <= 0.06; U-Net paper 0.0611 on the ISBI test set)")


if __name__ == "__main__":
    main()
