"""Post-processing on thick slices (engine/postprocess.py): the rules alone, on predictions made from a known truth.

A model's prediction of a small structure on thick slices is simulated from the truth: each cross-section eroded
or dilated by a pixel at random, one slice of the structure sometimes missed, and false-positive islands of
lesion size placed at random (some on the slices at the ends of the volume, some beside the structure). The
structures are what users bring: an oblique vessel or nerve ~3 mm across that moves 3-6 mm in-plane from one
slice to the next, and a lesion of 0.1-0.5 % of a slice over several slices; slices of 5-7.5 mm, pixels of
0.5-1 mm. For each volume the Dice over all slices is measured with no rule, the largest 3-D component by face
connectivity (the rule before), the largest object linked by the slice spacing, and, given two annotated
slices, the objects that reach the annotation.

    python benchmarks/postprocess_thick.py [--volumes 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unetgui.engine import postprocess  # noqa: E402


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred > 0, truth > 0
    return float(2 * (p & t).sum() / max(p.sum() + t.sum(), 1))


def structure(rng, kind: str, shape, spacing) -> np.ndarray:
    z, n, _ = shape
    sz, sxy = spacing[0], spacing[1]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    out = np.zeros(shape, np.uint8)
    cy, cx = rng.uniform(0.3, 0.7, 2) * n
    if kind == "oblique":  # ~3 mm across, moving 3-6 mm a slice in a random direction
        r = 1.5 / sxy
        step = rng.uniform(3, 6) / sxy
        angle = rng.uniform(0, 2 * np.pi)
        for k in range(z):
            t = k - z / 2
            out[k] = np.hypot(yy - cy - step * t * np.sin(angle), xx - cx - step * t * np.cos(angle)) <= r
            if not (0 < cy + step * t * np.sin(angle) < n and 0 < cx + step * t * np.cos(angle) < n):
                out[k] = 0
    else:  # a lesion of 0.1-0.5 % of a slice over several slices
        r = np.sqrt(rng.uniform(0.001, 0.005) * n * n / np.pi)
        rz = rng.uniform(2.2, 4.0)  # slices
        zc = z / 2 + rng.uniform(-1, 1)
        for k in range(z):
            f = 1 - ((k - zc) / rz) ** 2
            if f > 0:
                out[k] = np.hypot(yy - cy - rng.normal(0, 1), xx - cx - rng.normal(0, 1)) <= r * np.sqrt(f)
    return out


def predict(rng, truth: np.ndarray, spacing) -> np.ndarray:
    """A plausible prediction: boundary errors, an occasional missed slice, false-positive islands."""
    z, n, _ = truth.shape
    pred = np.zeros_like(truth)
    present = np.flatnonzero(truth.any(axis=(1, 2)))
    missed = set(rng.choice(present[1:-1], 1).tolist()) if len(present) > 4 and rng.random() < 0.3 else set()
    for k in range(z):
        if k in missed:
            continue
        m = truth[k] > 0
        u = rng.random()
        pred[k] = ndimage.binary_erosion(m) if u < 0.25 else (ndimage.binary_dilation(m) if u < 0.5 else m)
    area = max(int(truth.sum(axis=(1, 2)).max()), 12)
    yy, xx = np.mgrid[0:n, 0:n]
    for _ in range(rng.integers(1, 5)):
        k = int(rng.choice([0, 1, z - 2, z - 1, *range(z)]))
        r = np.sqrt(area * rng.uniform(0.3, 2.5) / np.pi)
        cy, cx = rng.uniform(r, n - r, 2)
        island = np.hypot(yy - cy, xx - cx) <= r
        for kk in range(k, min(z, k + int(rng.integers(1, 3)))):
            pred[kk] |= island
    return pred


def run(volumes: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(volumes):
        kind = ("oblique", "lesion")[i % 2]
        n = int(rng.choice([128, 192, 256]))
        spacing = (float(rng.uniform(5.0, 7.5)), *(float(rng.uniform(0.5, 1.0)),) * 2)
        truth = structure(rng, kind, (int(rng.integers(12, 20)), n, n), spacing)
        if truth.sum() == 0:
            continue
        pred = predict(rng, truth, spacing)
        present = np.flatnonzero(truth.any(axis=(1, 2)))
        annotated = [int(present[int(round(f * (len(present) - 1)))]) for f in (1 / 3, 2 / 3)]
        annotation = np.full(truth.shape, 255, np.uint8)
        annotation[annotated] = truth[annotated]
        radius = postprocess.link_radius(spacing)
        start = time.perf_counter()
        linked = postprocess.largest_component(pred, [1], radius)
        seconds = time.perf_counter() - start
        rows.append({"kind": kind, "spacing": [round(v, 2) for v in spacing], "size": n, "radius": radius,
                     "none": _dice(pred, truth), "face": _dice(postprocess.largest_component(pred, [1], 0), truth),
                     "linked": _dice(linked, truth),
                     "anchored": _dice(postprocess.annotated_objects(pred, [1], annotation, radius), truth),
                     "linked_seconds": seconds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = run(args.volumes)
    print("| structure | volumes | no rule | largest, face-connected (before) | largest, linked | reaching the annotation |")
    print("|---|---|---|---|---|---|")
    for kind in ("oblique", "lesion"):
        sel = [r for r in rows if r["kind"] == kind]
        cells = [f"{np.mean([r[k] for r in sel]):.3f} (min {np.min([r[k] for r in sel]):.2f})"
                 for k in ("none", "face", "linked", "anchored")]
        print(f"| {kind} | {len(sel)} | " + " | ".join(cells) + " |")
    print(f"linking took {np.median([r['linked_seconds'] for r in rows]) * 1000:.0f} ms median per volume")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
