"""Segment statistics: what each label measures, from its voxels and the image under them.

Definitions follow 3D Slicer's *Segment Statistics* where it has one (docs/meshes.md lists each, and where
we differ):

- ``voxels``, ``volume_mm3``, ``volume_ml``: the label's voxel count, times the voxel volume (the affine's
  determinant, right for an oblique or sheared grid); Slicer's "Labelmap" volume. 1 mL = 1000 mm^3 = 1 cm^3.
- ``surface_mm2``: the area of the label's closed surface (Slicer's "Closed surface" area), measured on the
  surface that :func:`unetgui.formats.mesh.surface` builds (passed in as ``surface_area``: this module stays
  numpy-only).
- intensity inside the mask (Slicer's "Scalar volume"): ``mean``, ``std`` (sample standard deviation, N - 1,
  as ITK), ``minimum``, ``maximum``, ``median`` (exact), ``p5``, ``p95`` (linear interpolation between the
  closest ranks, numpy's default). ``unit``: "HU" for CT, else empty.
- ``extent_mm``: the bounding box of the label along the image's column, row and slice axes, in mm (voxel
  count across the box times the spacing); ``centroid_ras``: the mean voxel centre in world RAS mm.
- ``components``: connected pieces, neighbours sharing a face (6-connectivity, ITK's default); ``largest_share``:
  the largest piece's share of the voxels.
- ``slice_area_mm2``: the label's area on each slice along the array's slice axis (pixel count times the
  in-plane pixel area), the plot a user reads at a glance.
- ``pieces``: the label's connected pieces (each lesion of a "lesion" label), largest first, at most
  :data:`MAX_PIECES`: each one's voxels, volume, diameters as below, centroid, and ``go_to``, the voxel of the piece
  nearest its centroid (where the app takes a user who picks it).
- ``long_diameter_mm``: the longest diameter in the plane of a slice (axial for an axial series), over all the
  label's slices, as RECIST measures a lesion on axial CT (for a label of several pieces: its largest piece's, since
  a diameter across lesions means nothing); ``long_diameter_slice``: that slice (0-based);
  ``short_diameter_mm``: the longest diameter on that slice perpendicular to the longest one (RECIST's short axis
  of a node), across the slice's convex outline (as calipers span a lesion); ``axes``: where both lie.
  ``feret_mm``: the largest distance between two points of the label in 3-D (the maximum Feret diameter; across
  all its pieces, as ITK's). All are measured on the voxels' outer corners (the label as the voxels
  cover it, edge to edge, as calipers measure), not their centres: a 10-pixel disc measures 10 pixels, not 9
  (ITK's Feret diameter joins border voxel centres and reads about one voxel less).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from unetgui.core.progress import CancelToken, check

#: the columns of the statistics table (CSV and JSON), in order; slice areas are a separate section
COLUMNS = ("label", "name", "voxels", "volume_mm3", "volume_ml", "surface_mm2", "mean", "std", "minimum", "maximum",
           "median", "p5", "p95", "unit", "extent_x_mm", "extent_y_mm", "extent_z_mm", "centroid_r_mm",
           "centroid_a_mm", "centroid_s_mm", "components", "largest_share", "long_diameter_mm", "short_diameter_mm",
           "long_diameter_slice", "feret_mm")


@dataclass(frozen=True)
class Axes:
    """Where a label's (or a piece's) in-plane diameters lie: the slice (0-based) and each diameter's two ends as
    (x, y) pixel coordinates on it (continuous: a pixel's centre is whole, its edges are at +-0.5)."""

    slice: int
    long: tuple[tuple[float, float], tuple[float, float]]
    short: tuple[tuple[float, float], tuple[float, float]]
    long_ras: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.0,) * 3,) * 2  # the ends, world mm
    short_ras: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.0,) * 3,) * 2


#: the pieces of a label measured one by one (a prediction's scattered specks are not each worth a row)
MAX_PIECES = 100


@dataclass(frozen=True)
class PieceStats:
    """One connected piece of a label (see the module docstring); ``piece`` counts from 1, the largest."""

    label: int
    piece: int
    voxels: int
    volume_mm3: float
    long_diameter_mm: float
    short_diameter_mm: float
    long_diameter_slice: int
    feret_mm: float
    axes: Axes | None
    centroid_ras: tuple[float, float, float]
    go_to: tuple[int, int, int]  # (z, y, x) of a voxel of the piece, the one nearest its centroid

    @property
    def volume_ml(self) -> float:
        return self.volume_mm3 / 1000.0


@dataclass(frozen=True)
class SegmentStats:
    """One label's statistics (see the module docstring for each definition). Intensity values are None
    when no image was given; ``surface_mm2`` when no surface area was asked for."""

    label: int
    name: str
    voxels: int
    volume_mm3: float
    volume_ml: float
    surface_mm2: float | None
    mean: float | None
    std: float | None
    minimum: float | None
    maximum: float | None
    median: float | None
    p5: float | None
    p95: float | None
    unit: str
    extent_mm: tuple[float, float, float]  # along the image's x (column), y (row), z (slice) axes
    centroid_ras: tuple[float, float, float]
    components: int
    largest_share: float
    slice_area_mm2: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    long_diameter_mm: float = 0.0
    short_diameter_mm: float = 0.0
    long_diameter_slice: int | None = None  # 0-based; None for an empty label
    feret_mm: float = 0.0
    axes: Axes | None = None  # where the in-plane diameters lie
    pieces: tuple[PieceStats, ...] = ()  # largest first, at most MAX_PIECES

    def row(self) -> dict:
        """The table row: :data:`COLUMNS` to plain Python values."""
        ex, ey, ez = self.extent_mm
        r, a, s = self.centroid_ras
        values = dict(label=self.label, name=self.name, voxels=self.voxels, volume_mm3=self.volume_mm3,
                      volume_ml=self.volume_ml, surface_mm2=self.surface_mm2, mean=self.mean, std=self.std,
                      minimum=self.minimum, maximum=self.maximum, median=self.median, p5=self.p5, p95=self.p95,
                      unit=self.unit, extent_x_mm=ex, extent_y_mm=ey, extent_z_mm=ez, centroid_r_mm=r,
                      centroid_a_mm=a, centroid_s_mm=s, components=self.components,
                      largest_share=self.largest_share, long_diameter_mm=self.long_diameter_mm,
                      short_diameter_mm=self.short_diameter_mm, long_diameter_slice=self.long_diameter_slice,
                      feret_mm=self.feret_mm)
        return {k: values[k] for k in COLUMNS}


def voxel_volume_mm3(affine: np.ndarray) -> float:
    return abs(float(np.linalg.det(np.asarray(affine, float)[:3, :3])))


def pixel_area_mm2(affine: np.ndarray) -> float:
    """Area of one pixel of a slice (the parallelogram of the column and row steps)."""
    a = np.asarray(affine, float)[:3, :3]
    return float(np.linalg.norm(np.cross(a[:, 0], a[:, 1])))


def measure(labels: np.ndarray, affine: np.ndarray, values: Iterable[int], names: dict[int, str] | None = None,
            image: np.ndarray | None = None, modality: str = "",
            surface_area: Callable[[int, np.ndarray], float | None] | None = None,
            cancel: CancelToken | None = None) -> list[SegmentStats]:
    """Statistics of each label value in ``values`` (an absent one gets zeros) of ``labels`` (``(z, y, x)``
    on the grid of ``affine``). ``image``: the intensities on the same grid (None: no intensity statistics).
    ``surface_area(value, mask)``: the area in mm^2 of label ``value``'s mask on a grid with ``affine``'s spacing
    and direction (given the label's bounding box; None: no surface area; a None it returns leaves that label's
    area unmeasured)."""
    labels = np.asarray(labels)
    if image is not None and np.shape(image) != labels.shape:
        raise ValueError(f"image {np.shape(image)} and labels {labels.shape} are not on one grid")
    affine = np.asarray(affine, float)
    voxel = voxel_volume_mm3(affine)
    pixel = pixel_area_mm2(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)  # x, y, z
    names = names or {}
    unit = "HU" if modality.upper() == "CT" else ""
    boxes = ndimage.find_objects(labels) if labels.dtype.kind in "ui" else []
    out = []
    for value in values:
        check(cancel)
        value = int(value)
        name = names.get(value, f"Label {value}")
        box = boxes[value - 1] if 0 < value <= len(boxes) else None
        if box is None:
            out.append(SegmentStats(value, name, 0, 0.0, 0.0, 0.0 if surface_area else None, None, None, None, None,
                                    None, None, None, unit, (0.0, 0.0, 0.0), (float("nan"),) * 3, 0, 0.0,
                                    np.zeros(labels.shape[0])))
            continue
        mask = labels[box] == value
        count = int(np.count_nonzero(mask))
        per_slice = np.zeros(labels.shape[0])
        per_slice[box[0]] = np.count_nonzero(mask, axis=(1, 2)) * pixel
        zyx = np.argwhere(mask) + [s.start for s in box]
        lo, hi = zyx.min(axis=0), zyx.max(axis=0)
        extent = tuple(float((hi[k] - lo[k] + 1) * spacing[2 - k]) for k in (2, 1, 0))  # x, y, z
        centre = zyx.mean(axis=0)
        centroid = centre[::-1] @ affine[:3, :3].T + affine[:3, 3]
        pieces, n = ndimage.label(mask)
        largest = int(np.bincount(pieces.ravel())[1:].max()) if n else 0
        intensity: list[float | None] = [None] * 7
        if image is not None:
            inside = np.asarray(image[box][mask], np.float64)
            p5, median, p95 = np.percentile(inside, [5, 50, 95])
            intensity = [float(inside.mean()), float(inside.std(ddof=1)) if count > 1 else 0.0, float(inside.min()),
                         float(inside.max()), float(median), float(p5), float(p95)]
        diameters = diameters_mm(mask, tuple(s.start for s in box), affine)
        parts = _pieces(value, pieces, n, [s.start for s in box], affine, voxel, diameters)
        if n > 1:  # a diameter across lesions means nothing: the largest piece's (the Feret diameter spans all, as ITK)
            big = parts[0]
            diameters = (big.long_diameter_mm, big.short_diameter_mm, big.long_diameter_slice, diameters[3], big.axes)
        area = None
        if surface_area is not None:
            area = surface_area(value, mask)  # the label's box: the area does not depend on where it lies
            area = None if area is None else float(area)  # None: not measured (yet)
        out.append(SegmentStats(value, name, count, count * voxel, count * voxel / 1000.0, area, *intensity, unit,
                                extent, (float(centroid[0]), float(centroid[1]), float(centroid[2])), int(n),
                                largest / count, per_slice, *diameters, parts))
    return out


def _pieces(value: int, pieces: np.ndarray, n: int, origin: list[int], affine: np.ndarray, voxel: float,
            whole: tuple) -> tuple[PieceStats, ...]:
    """The :class:`PieceStats` of the ``n`` pieces numbered in ``pieces`` (the label's box, ``origin`` its first
    voxel in the grid), largest first, at most :data:`MAX_PIECES`; ``whole``: the label's diameters (a label of
    one piece has the same)."""
    if n == 0:
        return ()
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)[1:]
    order = np.argsort(-sizes, kind="stable")[:MAX_PIECES]  # largest first; equal sizes in scan order
    boxes = ndimage.find_objects(pieces)
    out = []
    for rank, index in enumerate(order, start=1):
        box = boxes[index]
        part = pieces[box] == index + 1
        start = np.array([s.start for s in box]) + origin
        zyx = np.argwhere(part)
        centre = zyx.mean(axis=0)
        world = (centre + start)[::-1] @ affine[:3, :3].T + affine[:3, 3]
        spacing = np.linalg.norm(affine[:3, :3], axis=0)[::-1]  # z, y, x
        nearest = zyx[np.argmin((((zyx - centre) * spacing) ** 2).sum(axis=1))] + start
        diameters = whole if n == 1 else diameters_mm(part, tuple(int(v) for v in start), affine)
        out.append(PieceStats(value, rank, int(sizes[index]), int(sizes[index]) * voxel, *diameters,
                              (float(world[0]), float(world[1]), float(world[2])),
                              (int(nearest[0]), int(nearest[1]), int(nearest[2]))))
    return tuple(out)


def _hull(points: np.ndarray) -> np.ndarray:
    """The convex hull's vertices of ``points`` (n, d); all of them when there are too few or they are flat."""
    if len(points) <= 2 * points.shape[1] + 2:
        return points
    try:
        return points[ConvexHull(points).vertices]
    except QhullError:  # collinear or coplanar: no hull of full dimension; every point is a candidate
        return points


def _farthest(points: np.ndarray) -> tuple[float, int, int]:
    """The largest distance between two of ``points`` (n, 3) and their indices (blocks of rows: bounded memory)."""
    best, pair = 0.0, (0, 0)
    for start in range(0, len(points), 512):
        block = points[start:start + 512]
        d = np.einsum("ijk,ijk->ij", *(2 * [block[:, None, :] - points[None, :, :]]))
        k = int(np.argmax(d))
        if d.flat[k] > best:
            best, pair = float(d.flat[k]), (start + k // len(points), k % len(points))
    return float(np.sqrt(best)), pair[0], pair[1]


def _ordered_hull(points: np.ndarray) -> np.ndarray:
    """The convex hull's vertices of 2-D ``points`` in order around it (pixel corners are never all collinear)."""
    return points[ConvexHull(points).vertices]


def _perpendicular(hull: np.ndarray, world: np.ndarray, i: int, j: int, normal: np.ndarray):
    """The longest chord of the convex polygon ``hull`` ((x, y) pixels in order; ``world`` the same points in mm)
    perpendicular to the diameter from vertex ``i`` to ``j``: (length in mm, its ends in pixels). Along the diameter
    the chord's length is concave and piecewise linear, so its longest is where a vertex lies."""
    along = world[j] - world[i]
    across = np.cross(normal, along)
    t, s = world @ (along / np.linalg.norm(along)), world @ (across / np.linalg.norm(across))
    t2, s2, hull2 = np.roll(t, -1), np.roll(s, -1), np.roll(hull, -1, axis=0)
    best, ends = 0.0, (hull[i], hull[i])
    for tk in t:
        crosses = ((t - tk) * (t2 - tk) <= 0) & (t != t2)
        f = (tk - t[crosses]) / (t2[crosses] - t[crosses])
        depth = s[crosses] + f * (s2[crosses] - s[crosses])
        if depth.size < 2:
            continue
        lo, hi = int(np.argmin(depth)), int(np.argmax(depth))
        if depth[hi] - depth[lo] > best:
            points = hull[crosses] + f[:, None] * (hull2[crosses] - hull[crosses])
            best, ends = float(depth[hi] - depth[lo]), (points[lo], points[hi])
    return best, ends


def _pair(p, q) -> tuple[tuple[float, float], tuple[float, float]]:
    return (float(p[0]), float(p[1])), (float(q[0]), float(q[1]))


def diameters_mm(mask: np.ndarray, origin: tuple[int, int, int], affine: np.ndarray):
    """(long, short, slice of long, Feret, :class:`Axes`) in mm of ``mask`` (``(z, y, x)`` bool, the label's box
    whose first voxel is ``origin`` of the grid of ``affine``; the slice and the axes are the grid's); see the
    module docstring. The label's convex hull is that of the outer corners of each row's first and last pixel: in-plane
    diameters come from each slice's hull, the Feret diameter from the 3-D hull of all slices' hull corners at both
    faces of their slice."""
    a = np.asarray(affine, float)[:3, :3]
    normal = np.cross(a[:, 0], a[:, 1])
    rows = mask.any(axis=2)
    first = mask.argmax(axis=2) - 0.5  # the left edge of each row's first pixel
    last = mask.shape[2] - mask[:, :, ::-1].argmax(axis=2) - 0.5  # the right edge of its last
    longest, where, best, corners3d = 0.0, None, None, []
    for z in np.flatnonzero(rows.any(axis=1)):
        y = np.flatnonzero(rows[z]).astype(float)
        xs = np.concatenate([first[z, rows[z]], last[z, rows[z]]] * 2)
        ys = np.concatenate([y - 0.5, y - 0.5, y + 0.5, y + 0.5])
        hull = _ordered_hull(np.c_[xs, ys])  # (x, y) in pixels
        world = hull @ a[:, :2].T  # in-plane mm (the slice's position does not change distances within it)
        length, i, j = _farthest(world)
        if length > longest * (1 + 1e-9):  # a tie (within rounding) keeps the first slice
            longest, where, best = length, int(z), (hull, world, i, j)
        corners3d += [np.c_[hull, np.full(len(hull), z + dz)] for dz in (-0.5, 0.5)]
    if where is None:
        return 0.0, 0.0, None, 0.0, None
    hull, world, i, j = best
    short, (p, q) = _perpendicular(hull, world, i, j, normal)
    shift = np.array([origin[2], origin[1]], float)
    ends = [hull[i] + shift, hull[j] + shift, p + shift, q + shift]  # (x, y) pixels of the grid
    ras = [tuple(float(v) for v in np.asarray(affine, float) @ (x, y, origin[0] + where, 1.0))[:3] for x, y in ends]
    axes = Axes(origin[0] + where, _pair(*ends[:2]), _pair(*ends[2:]), (ras[0], ras[1]), (ras[2], ras[3]))
    feret, _, _ = _farthest(_hull(np.concatenate(corners3d)) @ a.T)  # (x, y, z) voxels of the box to mm
    return longest, short, origin[0] + where, feret, axes
