"""The workflow users care about, scripted on ISBI 2012 treated as a stack (25 EM slices of 512 x 512):

1. annotate 3 slices -> train 3 minutes on the CPU -> Dice of the membrane on every other slice;
2. "correct" 3 more slices (their ground truth, as a user would after fixing the predictions) -> retrain
   3 minutes starting from the first model -> Dice again.

Uses the same engine calls as the app (Trainer on reviewed slices, everything else "not annotated";
Predictor for segmentation). Both rounds are scored on the same 19 slices that neither round trained on.

Usage: python benchmarks/demo_correct_retrain.py [--minutes 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from unetgui.core.volume import LabelTable
from unetgui.engine.data import prepare_case, split
from unetgui.engine.inference import Predictor
from unetgui.engine.metrics import evaluate
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.presets import preset
from unetgui.engine.training import EpochStats, Trainer
from unetgui.formats.png import read_image_folder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012-membrane" / "train"
FIRST, MORE = [2, 12, 22], [7, 17, 24]


def load() -> tuple[np.ndarray, np.ndarray]:
    volume, names = read_image_folder(str(DATA / "image"))
    membrane = np.stack([(cv2.imread(str(DATA / "label" / n), cv2.IMREAD_GRAYSCALE) < 128) for n in names])
    return volume.voxels, membrane.astype(np.uint8)


def train_round(images, truth, reviewed, minutes, threads, init=None):
    labels = np.full(truth.shape, 255, np.uint8)
    labels[reviewed] = truth[reviewed]
    pre = init.preprocessing if init else Preprocessing.for_modality("OT")  # microscopy: per-volume z-score
    case = prepare_case("isbi", images, labels, pre)
    chosen = preset("cpu", 2)
    cfg = chosen.train.__class__(**{**chosen.train.to_json(), "minutes": minutes, "epochs": 100_000, "threads": threads,
                                    "device": "cpu", "steps_per_epoch": 25})
    trainer = Trainer([case], LabelTable.from_names("membrane"), pre, cfg, chosen.model, init,
                      split([case], cfg.val_fraction, cfg.seed))
    last = None
    for event in trainer.run():
        if isinstance(event, EpochStats):
            last = event
    print(f"  trained {last.epoch} epochs in {last.elapsed:.0f} s on {len(trainer.train_refs)} slices "
          f"(+{len(trainer.val_refs)} validation); best validation Dice {max(h.val_dice.get(1, 0) for h in trainer.history):.3f}")
    return trainer.best_checkpoint()


def score(model, images, truth, slices) -> tuple[float, float]:
    prediction = Predictor(model, device="cpu").predict(images, slices=slices, keep_probabilities=False).labels
    (m,) = evaluate(prediction[slices], truth[slices], (50.0, 0.004, 0.004), labels=[1])
    return m.dice, float(np.mean(prediction[slices] != truth[slices]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    images, truth = load()
    unseen = [z for z in range(images.shape[0]) if z not in FIRST + MORE]
    start = time.monotonic()
    print(f"round 1: {len(FIRST)} annotated slices {FIRST}, {args.minutes:g} min on the CPU")
    first = train_round(images, truth, FIRST, args.minutes, args.threads)
    dice1, error1 = score(first, images, truth, unseen)
    print(f"  membrane Dice on the {len(unseen)} unseen slices: {dice1:.3f} (misclassified pixels {error1:.3f})")
    print(f"round 2: +{len(MORE)} corrected slices {MORE}, retrain {args.minutes:g} min from the round-1 model")
    second = train_round(images, truth, FIRST + MORE, args.minutes, args.threads, init=first)
    dice2, error2 = score(second, images, truth, unseen)
    print(f"  membrane Dice on the same {len(unseen)} slices: {dice2:.3f} (misclassified pixels {error2:.3f})")
    print(f"summary: Dice {dice1:.3f} -> {dice2:.3f} after correcting 3 more slices; total {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
