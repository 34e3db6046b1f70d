"""CPU inference speed per preset, resolution and runtime, against the machine's matmul peak (one run).

Runtimes: torch eager, torch channels_last, torch.compile (needs a C++ compiler; skipped if it fails),
ONNX Runtime. Also the default path end to end: a 200-slice 512 x 512 series through `Predictor` with
the CPU preset (working size 256), including normalisation, resizing and argmax. Goal: <= 30 s on 2 cores.

Usage: python benchmarks/cpu_inference.py [--threads 2] [--no-compile]
"""

from __future__ import annotations

import argparse
import io
import time
import warnings

import numpy as np
import torch

from unetgui.core.volume import LabelTable
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.inference import Predictor
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.presets import PRESETS
from unetgui.engine.unet import UNet, flops_per_pixel


def _time(fn, x, repeat: int) -> float:
    fn(x)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops() -> float:
    a = torch.randn(2048, 2048)
    a @ a
    t = time.perf_counter()
    for _ in range(5):
        a @ a
    return 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9


def runtimes(model: UNet, size: int, compile_too: bool) -> dict[str, float]:
    x = torch.randn(1, model.config.in_channels, size, size)
    out = {}
    with torch.inference_mode():
        out["eager"] = _time(model, x, 3)
    import copy

    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        out["channels_last"] = _time(lambda t: cl(t.contiguous(memory_format=torch.channels_last)), x, 3)
    if compile_too:
        try:
            compiled = torch.compile(copy.deepcopy(model))
            with torch.inference_mode():
                out["torch.compile"] = _time(compiled, x, 3)
        except Exception as exc:  # no compiler, or an inductor problem on this machine
            print(f"  torch.compile failed: {type(exc).__name__}: {str(exc)[:80]}")
    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}}, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    out["onnxruntime"] = _time(lambda a: session.run(None, {"x": a}), x.numpy(), 3)
    return out


def end_to_end(slices: int = 200, size: int = 512) -> tuple[float, str]:
    preset = PRESETS["cpu"]
    torch.manual_seed(0)
    model = UNet(preset.model).eval()
    pre = Preprocessing(mode="ct", mean=40.0, std=300.0, working_size=preset.working_size)
    checkpoint = Checkpoint.from_model(model, pre, LabelTable.from_names("liver"))
    volume = np.random.default_rng(0).integers(-1000, 1500, (slices, size, size), dtype=np.int16)
    predictor = Predictor(checkpoint, device="cpu")
    t = time.perf_counter()
    predictor.predict(volume, keep_probabilities=True)
    return time.perf_counter() - t, predictor.device_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_gflops()
    print(f"torch {torch.__version__}, {args.threads} threads; large fp32 matmul: {peak:.0f} GFLOP/s")
    print(f"{'preset':<6} {'size':>5} {'GFLOP':>6}  " + "  ".join(f"{r:>22}" for r in
          ("eager", "channels_last", "torch.compile", "onnxruntime")))
    for name, preset in PRESETS.items():
        model = UNet(preset.model).eval()
        for size in (256, 512):
            gflop = flops_per_pixel(preset.model) * size * size / 1e9
            times = runtimes(model, size, not args.no_compile)
            cells = []
            for r in ("eager", "channels_last", "torch.compile", "onnxruntime"):
                if r in times:
                    rate = gflop / times[r]
                    cells.append(f"{times[r] * 1000:6.0f} ms {rate:5.0f} GF/s {rate / peak:4.2f}")
                else:
                    cells.append(f"{'n/a':>22}")
            print(f"{name:<6} {size:>5} {gflop:6.1f}  " + "  ".join(cells))
    seconds, device = end_to_end()
    print(f"default CPU path, 200 slices of 512 x 512 (preset cpu, working size 256, {device}): "
          f"{seconds:.1f} s = {seconds / 200 * 1000:.0f} ms/slice (goal <= 30 s)")


if __name__ == "__main__":
    main()
