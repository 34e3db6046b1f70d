"""Does "Next slice to correct" save the annotator work? A simulated annotator, three strategies.

For each data set and seed: start from 2 annotated slices (random, the same for every strategy) and a
model trained on them; then 6 rounds of: pick 1 more slice by

  (a) suggest: the app's ranking (core.ranking: uncertainty in and around the predicted structures,
      damped near annotated slices) on the current model's segmentation,
  (b) uniform: the slice farthest from every annotated slice (even spacing),
  (c) random,

"correct" it with the ground truth, fine-tune the model from the previous round for a fixed number of
steps (the same engine calls as the app's Train, starting from the current model), and measure Dice on
all slices not annotated yet. Prints the Dice curves (mean over seeds) and the slices picked.

Data: ../shared/data/isbi2012-membrane treated as a stack (25 EM slices, membrane label) and the
sample's synthetic CT phantom (resources/build_sample.py: 32 slices, liver label).

Usage: python benchmarks/active_learning.py [--data phantom,isbi] [--seeds 3] [--rounds 6] [--steps 60]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from unetgui.core.ranking import rank_slices, slice_scores
from unetgui.core.volume import LabelTable
from unetgui.engine.data import prepare_case
from unetgui.engine.inference import Predictor
from unetgui.engine.metrics import evaluate
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.presets import preset
from unetgui.engine.training import Trainer
from unetgui.formats.png import read_image_folder

ROOT = Path(__file__).resolve().parents[1]
ISBI = ROOT.parent / "shared" / "data" / "isbi2012-membrane" / "train"
STRATEGIES = ("suggest", "uniform", "random")


def load(name: str):
    """(images, truth, modality, preset name, label name, spacing)."""
    if name == "isbi":
        volume, names = read_image_folder(str(ISBI / "image"))
        membrane = np.stack([(cv2.imread(str(ISBI / "label" / n), cv2.IMREAD_GRAYSCALE) < 128) for n in names])
        return volume.voxels, membrane.astype(np.uint8), "OT", "cpu", "membrane", (50.0, 0.004, 0.004)
    spec = importlib.util.spec_from_file_location("build_sample", ROOT / "resources" / "build_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hu, liver = module.phantom(seed=0)
    return hu, liver, "CT", "small", "liver", (3.0, 1.2, 1.2)


def train(images, truth, annotated, modality, preset_name, label, steps, seed, init=None, patch=128):
    labels = np.full(truth.shape, 255, np.uint8)
    labels[annotated] = truth[annotated]
    chosen = preset(preset_name, 2)
    working = chosen.working_size if chosen.working_size and max(images.shape[1:]) > chosen.working_size else None
    pre = init.preprocessing if init else Preprocessing.for_modality(modality, working).fit_statistics([images], [labels])
    case = prepare_case("stack", images, labels, pre)
    cfg = replace(chosen.train, epochs=1, steps_per_epoch=steps, patch=min(patch, chosen.train.patch), device="cpu",
                  threads=2, seed=seed, warmup_steps=min(chosen.train.warmup_steps, steps // 3), minutes=None)
    refs = [(0, z) for z in sorted(annotated)]
    trainer = Trainer([case], LabelTable.from_names(label), pre, cfg, chosen.model, init, (refs, []))  # all slices train
    for _ in trainer.run():
        pass
    return trainer.best_checkpoint()


def segment(model, images):
    prediction = Predictor(model, device="cpu").predict(images, keep_probabilities=False)
    return prediction.labels, prediction.uncertainty


def dice(predicted, truth, slices, spacing) -> float:
    (m,) = evaluate(predicted[slices], truth[slices], spacing, labels=[1])
    return m.dice


def pick(strategy: str, annotated: list[int], extent: range, uncertainty, predicted, rng) -> int:
    """The next slice. The baselines pick within the structure's extent (an annotator knows where the
    organ is and would not space slices over empty ones); the suggestion may pick any slice."""
    n = predicted.shape[0]
    reviewed = np.zeros(n, bool)
    reviewed[annotated] = True
    if strategy == "suggest":
        return rank_slices(slice_scores(uncertainty, predicted), reviewed, 1)[0].slice
    free = [z for z in extent if not reviewed[z]]
    if strategy == "uniform":
        return max(free, key=lambda z: (min(abs(z - a) for a in annotated), -z))
    return int(rng.choice(free))


def run(name: str, seeds: int, rounds: int, steps: int, first_steps: int) -> dict:
    images, truth, modality, preset_name, label, spacing = load(name)
    n = images.shape[0]
    print(f"\n== {name}: {n} slices of {images.shape[1]}x{images.shape[2]}, preset {preset_name}, "
          f"{first_steps} steps on the first 2 slices, then {steps} fine-tuning steps per round", flush=True)
    present = np.flatnonzero(truth.any(axis=(1, 2)))
    extent = range(int(present.min()), int(present.max()) + 1)
    curves = {s: np.zeros((seeds, rounds + 1)) for s in STRATEGIES}
    picks = {s: [] for s in STRATEGIES}
    for seed in range(seeds):
        rng0 = np.random.default_rng(1000 + seed)
        # two random starting slices with some foreground, the same for every strategy
        candidates = list(extent)
        start = sorted(int(z) for z in rng0.choice(candidates, 2, replace=False))
        t = time.monotonic()
        first = train(images, truth, start, modality, preset_name, label, first_steps, seed)
        predicted0, uncertainty0 = segment(first, images)
        rest = [z for z in range(n) if z not in start]
        d0 = dice(predicted0, truth, rest, spacing)
        print(f"seed {seed}: start {start}, Dice {d0:.3f} ({time.monotonic() - t:.0f} s)", flush=True)
        for strategy in STRATEGIES:
            rng = np.random.default_rng(seed)
            annotated, model, predicted, uncertainty = list(start), first, predicted0, uncertainty0
            curves[strategy][seed, 0] = d0
            chosen = []
            for r in range(1, rounds + 1):
                z = pick(strategy, annotated, extent, uncertainty, predicted, rng)
                annotated.append(z)
                chosen.append(z)
                model = train(images, truth, annotated, modality, preset_name, label, steps, seed * 100 + r, init=model)
                predicted, uncertainty = segment(model, images)
                rest = [k for k in range(n) if k not in annotated]
                curves[strategy][seed, r] = dice(predicted, truth, rest, spacing)
            picks[strategy].append(chosen)
            print(f"  {strategy:8s} picks {chosen}: " + " ".join(f"{d:.3f}" for d in curves[strategy][seed]), flush=True)
    print(f"\n{name}: mean Dice on the not-yet-annotated slices (+- std over {seeds} seeds) by annotated slices")
    print("annotated  " + "  ".join(f"{2 + r:>13d}" for r in range(rounds + 1)))
    for strategy in STRATEGIES:
        c = curves[strategy]
        print(f"{strategy:9s}  " + "  ".join(f"{m:.3f} +- {s:.3f}" for m, s in zip(c.mean(0), c.std(0))))
    return {"curves": {s: c.tolist() for s, c in curves.items()}, "picks": picks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="phantom,isbi")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=60, help="fine-tuning steps per round (batch 4)")
    parser.add_argument("--first-steps", type=int, default=150, help="steps of the first model on 2 slices")
    parser.add_argument("--json", help="write the curves and picks here")
    args = parser.parse_args()
    start = time.monotonic()
    results = {name: run(name, args.seeds, args.rounds, args.steps, args.first_steps) for name in args.data.split(",")}
    print(f"\ntotal {time.monotonic() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
