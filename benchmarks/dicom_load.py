"""Scan + load speed of a synthetic uncompressed CT series (512 x 512, 300 slices by default).

Usage: python benchmarks/dicom_load.py [--slices 300] [--size 512]
Prints slices/s for scan (headers), load (pixels) and both together. Goal: >= 300 slices/s on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import write_series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    voxels = rng.integers(-1000, 2000, size=(args.slices, args.size, args.size), dtype=np.int16)
    with tempfile.TemporaryDirectory() as folder:
        write_series(voxels, folder)
        best_scan = best_load = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = scan(folder)
            t1 = time.perf_counter()
            volume = load_series(result.series[0])
            t2 = time.perf_counter()
            best_scan, best_load = min(best_scan, t1 - t0), min(best_load, t2 - t1)
        assert volume.shape == voxels.shape and volume.voxels.dtype == np.int16
        assert np.array_equal(volume.voxels, voxels)
    n = args.slices
    print(f"{n} slices of {args.size} x {args.size}, uncompressed, best of {args.repeat}:")
    print(f"  scan  {best_scan:6.2f} s  {n / best_scan:7.0f} slices/s")
    print(f"  load  {best_load:6.2f} s  {n / best_load:7.0f} slices/s")
    print(f"  both  {best_scan + best_load:6.2f} s  {n / (best_scan + best_load):7.0f} slices/s  (goal >= 300)")


if __name__ == "__main__":
    main()
