"""Where the inference time goes on this machine, and the torch pipeline against the numpy one it replaced.

In one run (the machine is shared: ratios, not absolute numbers, are what counts), a 200-slice 512 x 512
volume through ``Predictor`` (the ``cpu`` preset: working size 256, ONNX Runtime on the CPU), alternating
the torch-stage pipeline (engine/inference.py) and the numpy/OpenCV pipeline before it
(tests/numpy_pipeline.py), each ``--repeat`` times; then the seconds per stage of the torch pipeline
(upload, preprocess, forward, postprocess, download). ``--device cuda`` profiles the GPU (stages
synchronised) when there is one.

Usage: python benchmarks/pipeline_profile.py [--threads 2] [--slices 200] [--repeat 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from unetgui.core.volume import LabelTable
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.inference import Predictor
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.presets import PRESETS
from unetgui.engine.unet import UNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from numpy_pipeline import Predictor as NumpyPredictor  # noqa: E402


def checkpoint_for(preset: str) -> Checkpoint:
    p = PRESETS[preset]
    torch.manual_seed(0)
    pre = Preprocessing(mode="ct", mean=40.0, std=300.0, working_size=p.working_size)
    return Checkpoint.from_model(UNet(p.model).eval(), pre, LabelTable.from_names("liver"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = checkpoint_for(args.preset)
    volume = np.random.default_rng(0).integers(-1000, 1500, (args.slices, 512, 512), dtype=np.int16)
    times: dict[str, list[float]] = {"torch stages": [], "numpy stages": []}
    arms = {"torch stages": lambda: Predictor(checkpoint, device=args.device, threads=args.threads, profile=True, compile=False),
            "numpy stages": lambda: NumpyPredictor(checkpoint, device=args.device, threads=args.threads)}
    timings: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, make in arms.items():
            predictor = make()
            start = time.perf_counter()
            result = predictor.predict(volume, keep_probabilities=True)
            times[name].append(time.perf_counter() - start)
            if name == "torch stages":
                timings = result.timings
                device = result.device
    best = {name: min(t) for name, t in times.items()}
    print(f"{args.slices} slices of 512 x 512, preset {args.preset}, {device}; best of {args.repeat}:")
    for name, seconds in best.items():
        print(f"  {name:<13} {seconds:6.1f} s  {args.slices / seconds:6.1f} slices/s")
    print(f"  torch / numpy time: {best['torch stages'] / best['numpy stages']:.2f}")
    total = sum(timings.values())
    print("torch pipeline, seconds per stage (last run):")
    for stage, seconds in timings.items():
        print(f"  {stage:<12} {seconds:6.2f} s  {seconds / total:5.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps({"slices": args.slices, "preset": args.preset, "device": device,
                                               "threads": args.threads, "seconds": times, "stages": timings}, indent=1))


if __name__ == "__main__":
    main()
