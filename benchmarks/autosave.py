"""Autosave cost: journal append + fsync per stroke, snapshot of a whole label volume, recovery replay.

    python benchmarks/autosave.py [--slices 300] [--size 512] [--strokes 200] [--axis 0|1|2]

A stroke's journal record holds the box the stroke changed (zlib level 1) and the flags (a segmentation's
records hold whole slices); the snapshot is a compressed npz of all labels written atomically (temp + fsync
+ rename). ``--axis 2``: the strokes are drawn in sagittal planes (across all axial slices).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from unetgui.core.session import BrushSettings, Session
from unetgui.core.volume import Volume
from unetgui.project.autosave import Autosaver
from unetgui.project.store import Project


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--strokes", type=int, default=200)
    parser.add_argument("--axis", type=int, default=0, choices=[0, 1, 2], help="the plane the strokes are drawn in")
    args = parser.parse_args()
    shape = (args.slices, args.size, args.size)
    volume = Volume(np.zeros(shape, np.int16), np.diag([0.7, 0.7, 1.0, 1.0]), "CT")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(f"{tmp}/p")
        project.series.append(__import__("unetgui.project.store", fromlist=["SeriesEntry"]).SeriesEntry(
            "s1", "none", "nifti", shape=shape))
        session = Session()
        session.open(volume)
        # organ-like content on every slice so that records and snapshots are not trivially compressible
        yy, xx = np.mgrid[:args.size, :args.size]
        for z in range(args.slices):
            session.labels.labels[z] = ((yy - args.size / 2) ** 2 / 1.4 + (xx - args.size / 2.2) ** 2 < (args.size / 4) ** 2)
        t = time.perf_counter()
        saver = Autosaver(session, project, "s1")  # first snapshot
        first_snapshot = time.perf_counter() - t
        latencies = []
        session.set_axis(args.axis)
        rows = args.slices if args.axis else args.size  # the plane's rows: z in coronal and sagittal planes
        for k in range(args.strokes):
            session.set_index(int(rng.integers(0, shape[args.axis])))
            session.begin_stroke()
            r, c = rng.uniform(0.15, 0.85) * rows, rng.uniform(50, args.size - 50)
            session.paint_segment(r, c, min(r + 0.6 * rows, rows - 1), c + 30, BrushSettings(radius=10))
            t = time.perf_counter()
            session.end_stroke()  # the journal append + fsync happens inside, before this returns
            latencies.append(time.perf_counter() - t)
        size = __import__("os").path.getsize(project.journal_path("s1"))
        t = time.perf_counter()
        saved = Project.open(project.root).read_labels("s1")
        replay = time.perf_counter() - t
        assert np.array_equal(saved.labels, session.labels.labels)
        t = time.perf_counter()
        saver.snapshot()
        snapshot = time.perf_counter() - t
    ms = np.asarray(latencies) * 1000
    print(f"labels {shape}, strokes in {('axial', 'coronal', 'sagittal')[args.axis]} planes: stroke end incl. journal append + fsync: median {np.median(ms):.1f} ms, "
          f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms")
    print(f"journal after {args.strokes} strokes: {size / 1e6:.2f} MB; recovery (snapshot + replay): {replay:.2f} s")
    print(f"snapshot of all labels: {snapshot:.2f} s (first one {first_snapshot:.2f} s)")


if __name__ == "__main__":
    main()
