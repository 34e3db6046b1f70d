"""How long the 3-D view and the statistics take on CT-sized labels (docs/meshes.md has the numbers).

Three labels on a 512 x 512 grid with 0.75 mm pixels and 2 mm slices: a large lobed blob (3.9 L at 200 slices: a
liver on the large side), a kidney-sized one (155 mL) and a lesion (3 mL); the volumes are printed. For each: the 3-D
view's preview surface (tasks/stats.label_surfaces, preview=True), the full-resolution surface (export, statistics'
area), and the whole statistics of the document (document_statistics, with and without the surface area; and as the
statistics dock measures after a stroke on the kidney and on the lesion: numbers first, then the changed labels
meshed), each the median of ``--repeat`` runs in one process (the machine is shared: ratios within one run are what
to compare).

    python benchmarks/surfaces.py [--slices 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import ndimage

from unetgui.core.volume import LabelMap, LabelTable, Volume
from unetgui.tasks.stats import SurfaceAreas, document_statistics, label_surfaces


def _blob(shape, centre, radii, seed):
    """A smooth, lobed blob: an ellipsoid whose radius varies by low-frequency noise."""
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    d = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape).astype(np.float32), 8)
    return d < 1 + 40 * noise


def _time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shape = (args.slices, 512, 512)
    affine = np.diag([0.75, 0.75, 2.0, 1.0])
    labels = np.zeros(shape, np.uint8)
    n = args.slices
    labels[_blob(shape, (n * 0.5, 230, 200), (n * 0.3, 110, 120), 1)] = 1  # liver
    labels[_blob(shape, (n * 0.45, 300, 380), (n * 0.12, 40, 30), 2) & (labels == 0)] = 2  # kidney
    labels[_blob(shape, (n * 0.55, 200, 180), (4, 12, 12), 3)] = 3  # a lesion inside the liver
    ml = np.bincount(labels.ravel(), minlength=4)[1:] * 0.75 * 0.75 * 2.0 / 1000
    print(f"grid {shape}, labels {', '.join(f'{v:.0f} mL' for v in ml)}")
    image = Volume(np.random.default_rng(0).normal(60, 20, shape).astype(np.int16), affine, "CT")
    document = LabelMap(labels, affine, LabelTable.from_names("liver", "kidney", "lesion"))
    t, meshes = _time(lambda: label_surfaces(labels, affine, [1, 2, 3], preview=True), args.repeat)
    print(f"3-D view preview surfaces: {t:.2f} s, triangles {[len(m.faces) for m in meshes.values()]}")
    t, meshes = _time(lambda: label_surfaces(labels, affine, [1, 2, 3], preview=False), args.repeat)
    print(f"full-resolution surfaces:  {t:.2f} s, triangles {[len(m.faces) for m in meshes.values()]}")
    t, _ = _time(lambda: document_statistics(image, document, surface=False), args.repeat)
    print(f"statistics without surface area: {t:.2f} s")
    t, _ = _time(lambda: document_statistics(image, document), args.repeat)
    print(f"statistics with surface area:    {t:.2f} s")
    # the statistics dock after a stroke: the numbers first, then only the areas of the labels whose voxels changed
    # (the others' are remembered from the measurement before)
    areas = SurfaceAreas()
    document_statistics(image, document, areas=areas)
    for value, name in ((2, "kidney (into background)"), (3, "lesion (into the liver)")):
        voxels = np.argwhere(labels == value)
        z, y, x = voxels[np.argmax(voxels[:, 2])]  # the label's right edge: a stroke there grows it
        strokes = iter(range(1, 10 ** 6))

        def after_a_stroke():
            labels[z, y, x + next(strokes)] = value  # a one-voxel stroke, a new one each run
            first, start = [], time.perf_counter()
            document_statistics(image, document, areas=areas, emit=lambda r: first.append(time.perf_counter() - start))
            return first[0] if first else None

        t, numbers = _time(after_a_stroke, args.repeat)
        print(f"dock after a stroke on the {name}: numbers after {numbers:.2f} s, all areas after {t:.2f} s")

if __name__ == "__main__":
    main()
