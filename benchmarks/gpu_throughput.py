"""GPU throughput of the whole pipeline against the bare model, for inference and training (one run).

For the ``gpu`` and ``cpu`` presets at 512 x 512 (the ``cpu`` preset works at 256 px):
* inference: ``Predictor.predict`` end to end on a volume in host memory (eager, and with ``torch.compile``
  once its background compilation is done), against the bare model in bf16, channels_last, with its inputs
  already on the GPU (eager and compiled), at the predictor's batch size; slices/s and the ratio;
* training: samples/s of the real ``Trainer`` (the planner's batch and patch for CUDA, augmentation, EMA,
  validation excluded) against a bare training loop of the same network (the same AdamW, bf16, Dice + CE, no
  augmentation, data already on the GPU); and the ratio;
* the peak GPU memory of each part.
Without CUDA it says so and exits 0 (CI has no GPU); ``--allow-cpu`` runs it in miniature on the CPU to
check the script itself.

Usage: python benchmarks/gpu_throughput.py [--slices 500] [--json out.json] [--presets gpu,cpu]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from unetgui.core.volume import LabelTable
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.data import Case
from unetgui.engine.inference import Predictor
from unetgui.engine.loss import dice_ce_loss
from unetgui.engine.planner import fingerprint, plan_training
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.presets import PRESETS
from unetgui.engine.training import BatchStats, TrainConfig, Trainer, adamw
from unetgui.engine.unet import UNet


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0


def phantom(slices: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like volume (int16 HU) with an ellipsoidal 'organ' of ~10 % of the slice, and its labels."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:slices, :size, :size]
    organ = ((y - size * 0.45) / (size * 0.2)) ** 2 + ((x - size * 0.55) / (size * 0.16)) ** 2 + \
        ((z - slices / 2) / (slices * 0.6)) ** 2 < 1
    body = ((y - size / 2) / (size * 0.42)) ** 2 + ((x - size / 2) / (size * 0.46)) ** 2 < 1
    hu = np.where(body, 40, -1000) + np.where(organ, 60, 0) + rng.normal(0, 15, (slices, size, size))
    return hu.astype(np.int16), np.broadcast_to(organ, (slices, size, size)).astype(np.uint8)


def bare_inference(model: UNet, batch: int, side: int, device: torch.device, compiled: bool, seconds: float) -> float:
    """Slices/s of the bare model: bf16 autocast (CUDA), channels_last, inputs already on the device."""
    net = model.to(device).eval().to(memory_format=torch.channels_last)
    fn = torch.compile(net) if compiled else net
    x = torch.randn(batch, model.config.in_channels, side, side, device=device).contiguous(memory_format=torch.channels_last)
    amp = device.type == "cuda"
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for _ in range(3):
            fn(x).softmax(1)
        _sync(device)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn(x).softmax(1)
            n += batch
        _sync(device)
    return n / (time.perf_counter() - start)


def pipeline(checkpoint: Checkpoint, volume: np.ndarray, device: str, compile_: bool) -> tuple[float, Predictor]:
    predictor = Predictor(checkpoint, device=device, compile=compile_)
    predictor.predict(volume, keep_probabilities=True)  # warm-up at the run's batch; then its shape compiles
    if compile_:
        from unetgui.engine import compiled

        for forward in list(compiled._CACHE.values()):
            forward.wait(900)
    _sync(predictor.device)
    start = time.perf_counter()
    predictor.predict(volume, keep_probabilities=True)
    return volume.shape[0] / (time.perf_counter() - start), predictor


def training(name: str, hu: np.ndarray, labels: np.ndarray, device: torch.device, steps: int) -> dict:
    """Samples/s of the real trainer (planner's CUDA batch and patch) and of a bare loop of the same net."""
    preset = PRESETS[name]
    fp = fingerprint([hu], [labels], "CT", [(0.8, 0.8)])
    plan = plan_training(fp, device.type if device.type != "cpu" else "cpu", None,
                         {"base": preset.model.base, "depth": preset.model.depth,
                          "working_size": preset.working_size or None})
    pre = Preprocessing(mode="ct", window=(-200.0, 300.0), mean=60.0, std=60.0, working_size=plan.working_size)
    from unetgui.engine.data import prepare_case

    case = prepare_case("bench", hu, labels, pre)
    config = TrainConfig(**{**plan.train.to_json(), "epochs": 2, "steps_per_epoch": steps, "minutes": None,
                            "device": device.type, "val_fraction": 0.1})
    trainer = Trainer([case], LabelTable.from_names("organ"), pre, config, plan.model)
    _peak_reset(device)
    marks = []
    for event in trainer.run():
        if isinstance(event, BatchStats) and event.epoch == 2:
            marks.append((time.perf_counter(), event.step))
    (t0, s0), (t1, s1) = marks[0], marks[-1]
    real = (s1 - s0) * config.batch_size / (t1 - t0)
    real_peak = _peak_gb(device)
    # the bare loop: the same network, batch, patch and optimizer (fused AdamW on CUDA, as the trainer's); data
    # already on the device; no augmentation
    model = UNet(plan.model).to(device).to(memory_format=torch.channels_last)
    optimizer = adamw(model.parameters(), 1e-3, 1e-4, device)
    x = torch.randn(config.batch_size, plan.model.in_channels, *config.patch, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, plan.model.classes, (config.batch_size, *config.patch), device=device)
    amp = device.type == "cuda"
    _peak_reset(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = dice_ce_loss(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    bare = steps * config.batch_size / (time.perf_counter() - start)
    return {"batch": config.batch_size, "patch": list(config.patch), "trainer_samples_s": real,
            "bare_samples_s": bare, "ratio": real / bare, "trainer_peak_gb": real_peak, "bare_peak_gb": _peak_gb(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=100, help="training steps per measured epoch")
    parser.add_argument("--presets", default="gpu,cpu")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per bare-model measurement")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--allow-cpu", action="store_true", help="run in miniature on the CPU (checks the script)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("no CUDA GPU on this machine: nothing to measure (the GPU benchmark needs one)")
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}; {args.slices} slices of {args.size} x {args.size}")
    hu, labels = phantom(args.slices, args.size)
    results: dict = {"device": name, "torch": torch.__version__, "slices": args.slices, "size": args.size, "presets": {}}
    for preset_name in args.presets.split(","):
        preset = PRESETS[preset_name]
        torch.manual_seed(0)
        pre = Preprocessing(mode="ct", mean=40.0, std=300.0, working_size=preset.working_size)
        checkpoint = Checkpoint.from_model(UNet(preset.model).eval(), pre, LabelTable.from_names("organ"))
        row: dict = {}
        _peak_reset(device)
        row["pipeline_eager"], predictor = pipeline(checkpoint, hu, device.type, False)
        row["compiled_batches"] = 0
        row["pipeline_peak_gb"] = _peak_gb(device)
        row["batch"] = predictor.batch_size
        row["stages_s"] = {k: round(v, 3) for k, v in predictor.timings.items()}
        side = max(pre.working_shape((args.size, args.size)))
        row["bare_eager"] = bare_inference(UNet(preset.model), predictor.batch_size, side, device, False, args.seconds)
        if not args.no_compile:
            row["pipeline_compiled"], compiled_predictor = pipeline(checkpoint, hu, device.type, True)
            row["compiled_batches"] = compiled_predictor.compiled_runs  # 0: the compiled graph never ran
            row["compile_notes"] = compiled_predictor.notes
            try:
                row["bare_compiled"] = bare_inference(UNet(preset.model), predictor.batch_size, side, device, True,
                                                      args.seconds)
            except Exception as exc:  # noqa: BLE001 - a machine without a working compiler
                row["bare_compiled_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
        row["ratio_eager"] = row["pipeline_eager"] / row["bare_eager"]
        if "bare_compiled" in row:
            row["ratio_compiled_pipeline_to_bare_eager"] = row["pipeline_compiled"] / row["bare_eager"]
        row["training"] = training(preset_name, hu[:min(args.slices, 64)], labels[:min(args.slices, 64)], device,
                                   args.steps)
        results["presets"][preset_name] = row
        print(f"\n{preset_name} preset (base {preset.model.base}, depth {preset.model.depth}, model input {side} px, "
              f"batch {predictor.batch_size}):")
        print(f"  Predictor end to end, eager:    {row['pipeline_eager']:8.0f} slices/s  "
              f"({row['ratio_eager']:.2f}x the bare eager model)")
        print(f"  bare model bf16, eager:         {row['bare_eager']:8.0f} slices/s")
        if "pipeline_compiled" in row:
            print(f"  Predictor end to end, compiled: {row['pipeline_compiled']:8.0f} slices/s  "
                  f"({row['compiled_batches']} forward passes compiled{'; ' + '; '.join(row['compile_notes']) if row['compile_notes'] else ''})")
        if "bare_compiled" in row:
            print(f"  bare model bf16, compiled:      {row['bare_compiled']:8.0f} slices/s")
        t = row["training"]
        print(f"  training, batch {t['batch']} of {t['patch'][0]} x {t['patch'][1]}: trainer {t['trainer_samples_s']:.0f} "
              f"samples/s, bare loop {t['bare_samples_s']:.0f} ({t['ratio']:.2f}x)")
        print(f"  peak GPU memory: pipeline {row['pipeline_peak_gb']:.1f} GB, trainer {t['trainer_peak_gb']:.1f} GB")
        print(f"  pipeline stages (s, host view of the last run): {row['stages_s']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
