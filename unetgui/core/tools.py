"""Label editing operations on 2-D slices (numpy; scipy.ndimage for connected regions and distances; no Qt).

Every function works on one slice ``(y, x)`` and returns a new array (or edits in place where noted);
the Session wraps them into undoable steps.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from unetgui.core.volume import UNANNOTATED


@lru_cache(maxsize=64)
def disk(radius: float) -> np.ndarray:
    """Boolean disk of ``radius`` pixels (diameter ``2*ceil(radius)+1``), centre in the middle."""
    r = max(0.5, float(radius))
    n = int(np.ceil(r - 0.5))
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    out = (yy * yy + xx * xx) <= r * r
    out.setflags(write=False)
    return out


def stroke_points(y0: float, x0: float, y1: float, x1: float, radius: float) -> list[tuple[int, int]]:
    """Dab centres from (y0, x0) to (y1, x1), spaced so that consecutive disks overlap without gaps."""
    length = float(np.hypot(y1 - y0, x1 - x0))
    steps = max(1, int(np.ceil(length / max(radius * 0.5, 0.5))))
    ts = np.linspace(0.0, 1.0, steps + 1)
    points = [(int(round(y0 + (y1 - y0) * t)), int(round(x0 + (x1 - x0) * t))) for t in ts]
    return list(dict.fromkeys(points))


def dab(labels: np.ndarray, cy: int, cx: int, radius: float, value: int,
        allowed: np.ndarray | None = None, only: int | None = None,
        marks: np.ndarray | None = None, mark: bool = True) -> tuple[int, int, int, int] | None:
    """Paint a disk of ``value`` centred at (cy, cx) into ``labels`` (2-D, in place).

    ``allowed``: boolean slice mask limiting where paint lands (threshold brush). ``only``: change only
    voxels that currently hold this value (the eraser erases the active label only). ``marks``: a boolean
    slice (the annotation mask) set to ``mark`` over the whole disk within ``allowed`` (the eraser takes the
    annotation away where it erases ``only`` or finds background, not from another label); a threshold stroke that
    annotates also annotates the background (0) voxels of its disk outside ``allowed``: it said the
    structure is exactly the voxels in range there. Returns the box ``(y0, y1, x0, x1)`` touched, or None
    when the disk lies outside the slice.
    """
    d = disk(radius)
    n = d.shape[0] // 2
    h, w = labels.shape
    y0, y1, x0, x1 = max(0, cy - n), min(h, cy + n + 1), max(0, cx - n), min(w, cx + n + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    mask = d[y0 - (cy - n):y1 - (cy - n), x0 - (cx - n):x1 - (cx - n)].copy()
    region = labels[y0:y1, x0:x1]
    outside = None
    if allowed is not None:
        outside = mask & ~allowed[y0:y1, x0:x1] & (region == 0)
        mask &= allowed[y0:y1, x0:x1]
    if marks is not None:
        # the eraser takes the annotation away only where it erases (the active label) or finds background:
        # another label's strokes under it stay annotated, as they stay on screen
        marked = mask if mark or only is None else mask & ((region == only) | (region == 0))
        marks[y0:y1, x0:x1][marked] = mark
        if mark and outside is not None:
            marks[y0:y1, x0:x1][outside] = True
    if only is not None:
        mask &= region == only
    region[mask] = value
    return y0, y1, x0, x1


def flood_fill(labels: np.ndarray, seed: tuple[int, int], value: int, image: np.ndarray | None = None,
               tolerance: float | None = None) -> np.ndarray:
    """4-connected fill from ``seed`` over the region of equal label (and, with ``image`` and
    ``tolerance``, intensity within ``tolerance`` of the seed's). Returns a new slice."""
    from scipy import ndimage

    y, x = seed
    region = labels == labels[y, x]
    if image is not None and tolerance is not None:
        region &= np.abs(image.astype(np.float32) - float(image[y, x])) <= tolerance
    components, _ = ndimage.label(region)
    out = labels.copy()
    out[components == components[y, x]] = value
    return out


def fill_holes(labels: np.ndarray, value: int) -> np.ndarray:
    """Fill the holes (regions not connected to the border) inside label ``value``."""
    from scipy import ndimage

    mask = labels == value
    filled = ndimage.binary_fill_holes(mask)
    out = labels.copy()
    # only background or unannotated voxels: a hole holding another label (a tumour in the liver) stays
    out[filled & ~mask & ((labels == 0) | (labels == UNANNOTATED))] = value
    return out


def interpolate(first: np.ndarray, last: np.ndarray, steps: int) -> list[np.ndarray]:
    """Shape-based interpolation of two boolean masks: ``steps`` intermediate masks (signed distances)."""
    from scipy import ndimage

    def signed(mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.full(mask.shape, -1e6, np.float32)
        inside = ndimage.distance_transform_edt(mask)
        outside = ndimage.distance_transform_edt(~mask)
        return (inside - outside).astype(np.float32)

    a, b = signed(first), signed(last)
    return [((1 - t) * a + t * b) > 0 for t in (np.arange(1, steps + 1) / (steps + 1))]


def structure_extent(labels: np.ndarray, value: int) -> tuple[tuple[int, int, int], tuple[slice, slice, slice]] | None:
    """Where label ``value`` lies in a ``(z, y, x)`` map: a voxel of the label nearest its centre of mass (the
    centre itself may lie outside a curved structure) and its bounding box; None when no voxel has it."""
    mask = labels == value  # once: three comparisons of a 600-slice CT took about a second on the GUI thread
    planes = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    if any(p.size == 0 for p in planes):
        return None
    box = tuple(slice(int(p[0]), int(p[-1]) + 1) for p in planes)
    voxels = np.argwhere(mask[box])
    nearest = voxels[np.argmin(((voxels - voxels.mean(axis=0)) ** 2).sum(axis=1))]
    return tuple(int(v + s.start) for v, s in zip(nearest, box)), box
