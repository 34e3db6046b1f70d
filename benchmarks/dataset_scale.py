"""Data set scale (issue 14): peak memory of `unetgui train --dataset` for 8 and 32 LiTS-sized synthetic cases
(512 x 512 x 100-400 slices), the first run (which fills the cache) and the second (which reuses it), and
patches per second drawn from the cache's memory maps beside the same cases held in memory.

    python benchmarks/dataset_scale.py --work /tmp/dscale [--cases 8 32] [--minutes 1] [--threads 2]

Each training is its own process; its peak RSS comes from wait4(). Writes a markdown table and a JSON file
into --work (docs/engine.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def _generate(folder: Path, cases: int, slices: tuple[int, int]) -> float:
    from lits_synth import write_lits

    start = time.monotonic()
    if not all((folder / f"segmentation-{n}.nii.gz").is_file() for n in range(cases)):
        write_lits(folder, cases, 512, slices, seed=0)
    return time.monotonic() - start


def _subset(source: Path, folder: Path, cases: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(cases):
        for kind in ("volume", "segmentation"):
            link = folder / f"{kind}-{n}.nii.gz"
            if not link.exists():
                link.symlink_to(source / f"{kind}-{n}.nii.gz")


def _train(dataset: Path, out: Path, minutes: float, threads: int) -> dict:
    cmd = [sys.executable, "-m", "unetgui", "train", "--dataset", str(dataset), "--output", str(out), "--minutes",
           str(minutes), "--device", "cpu", "--threads", str(threads)]
    start = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"training failed: {run.stderr[-2000:]}")
    return {"seconds": round(time.monotonic() - start, 1), "stdout_tail": run.stdout.strip().splitlines()[-4:]}


def _peak_rss_mb(dataset: Path, out: Path, minutes: float, threads: int) -> dict:
    """Run one training and measure the child's peak RSS (ru_maxrss, KiB on Linux)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = _train(dataset, out, minutes, threads)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN is the largest of all waited-for children: run each measurement in a fresh parent
    result["peak_rss_mb"] = round(after / 1024, 1)
    result["note"] = "" if after > before else "peak not above an earlier child's: measure in a fresh process"
    return result


def _patches_per_second(dataset: Path, cases: int, threads: int) -> dict:
    """The same cached cases through PatchSampler, memory-mapped and loaded into memory."""
    import torch

    from unetgui.engine.data import Case, PatchSampler

    torch.set_num_threads(threads)
    root = dataset / ".unetgui-cache"
    prep = sorted(p for p in root.iterdir() if p.name.startswith("prep-"))[-1]
    mapped = []
    for folder in sorted(prep.iterdir())[:cases]:
        meta = json.loads((folder / "meta.json").read_text())
        fg = np.load(folder / "foreground.npz")
        mapped.append(Case(folder.name, np.load(folder / "image.npy", mmap_mode="r"),
                           np.load(folder / "labels.npy", mmap_mode="r"), tuple(meta["annotated"]),
                           {int(k[1:]): fg[k] for k in fg.files}))
    in_memory = [Case(c.name, np.array(c.image), np.array(c.labels), c.annotated, c.foreground) for c in mapped]
    out = {}
    for name, cases_ in (("memory-mapped", mapped), ("in memory", in_memory)):
        refs = [(i, z) for i, c in enumerate(cases_) for z in c.annotated]
        sampler = PatchSampler(cases_, refs, 160, 0, seed=0)
        sampler.batch(10)
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 5.0:
            sampler.batch(10)
            n += 10
        out[name] = round(n / (time.monotonic() - start), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--cases", type=int, nargs="*", default=[8, 32])
    parser.add_argument("--slices", type=int, nargs=2, default=[100, 400])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("N", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    source = args.work / "all"
    if args.one:  # a fresh process per measurement, so that RUSAGE_CHILDREN is this training's alone
        n, run = int(args.one[0]), args.one[1]
        result = _peak_rss_mb(args.work / f"n{n}", args.work / f"n{n}-{run}.unetgui", args.minutes, args.threads)
        print(json.dumps(result))
        return
    generated = _generate(source, max(args.cases), tuple(args.slices))
    rows = []
    for n in args.cases:
        _subset(source, args.work / f"n{n}", n)
        voxels = sum(int(np.prod(__import__("nibabel").load(str(source / f"volume-{k}.nii.gz")).shape)) for k in range(n))
        row = {"cases": n, "voxels": voxels}
        for run in ("first", "second"):
            child = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--minutes", str(args.minutes),
                                    "--threads", str(args.threads), "--one", str(n), run],
                                   capture_output=True, text=True, check=True)
            row[run] = json.loads(child.stdout.strip().splitlines()[-1])
        row["patches_per_s"] = _patches_per_second(args.work / f"n{n}", min(n, 8), args.threads)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"generated_seconds": round(generated, 1), "rows": rows, "minutes": args.minutes, "threads": args.threads}
    (args.work / "dataset_scale.json").write_text(json.dumps(result, indent=1))
    lines = ["| cases | voxels | first run: peak RSS, time | second run (cache reused): peak RSS, time | patches/s mapped / in memory |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cases']} | {r['voxels'] / 1e9:.2f} G | {r['first']['peak_rss_mb']:.0f} MB, {r['first']['seconds']:.0f} s | "
                     f"{r['second']['peak_rss_mb']:.0f} MB, {r['second']['seconds']:.0f} s | "
                     f"{r['patches_per_s']['memory-mapped']:.0f} / {r['patches_per_s']['in memory']:.0f} |")
    table = "\n".join(lines)
    (args.work / "dataset_scale.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
