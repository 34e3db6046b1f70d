"""See and measure a segmentation: the segment statistics (the app's Statistics dock, ``unetgui stats`` and the
export's metrics CSV all measure through :func:`document_statistics`) and the label surfaces (the 3-D view's
:func:`label_surfaces`, the export's meshes).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Callable, Iterable

import numpy as np
from scipy import ndimage

from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core.statistics import SegmentStats
from unetgui.core.volume import LabelMap, Volume
from unetgui.formats import mesh
from unetgui.formats.mesh import Mesh
from unetgui.formats.statistics import label_statistics

#: the 3-D view samples a label's box at most this many voxels (every step-th voxel along each axis): a
#: 512 x 512 x 300 liver becomes a surface of ~100k triangles in a fraction of a second
PREVIEW_VOXELS = 4_000_000


class SurfaceAreas:
    """Surface areas already measured, by the label mask's content (its box's voxels and the grid's spacing and
    direction): a mask unchanged since its last measurement is not meshed again. The statistics dock measures after
    every stroke, and a stroke changes one label: the others' areas (seconds each for a large organ) come from here.
    Holds at most ``capacity`` areas (the oldest go first); safe to share between threads."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._known: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(mask: np.ndarray, affine: np.ndarray) -> bytes:
        digest = hashlib.blake2b(digest_size=20)
        digest.update(np.asarray(mask.shape, np.int64).tobytes())
        digest.update(np.ascontiguousarray(np.asarray(affine, np.float64)[:3, :3]).tobytes())  # not where it lies
        digest.update(np.packbits(mask).tobytes())
        return digest.digest()

    def known(self, mask: np.ndarray, affine: np.ndarray) -> float | None:
        """The area of ``mask`` if it was measured, else None."""
        return self._recall(self.key(mask, affine))

    def _recall(self, key: bytes) -> float | None:
        with self._lock:
            area = self._known.get(key)
            if area is not None:
                self._known.move_to_end(key)
            return area

    def measure(self, mask: np.ndarray, affine: np.ndarray, cancel: CancelToken | None = None) -> float:
        """The area of ``mask``'s closed surface in mm^2 (remembered, or measured now and remembered)."""
        key = self.key(mask, affine)  # hashed once: a large organ's mask is megabytes
        area = self._recall(key)
        if area is None:
            area = mesh.surface(mask, affine, cancel=cancel).area()
            with self._lock:
                self._known[key] = area
                while len(self._known) > self.capacity:
                    self._known.popitem(last=False)
        return area


def document_statistics(volume: Volume | None, labels: LabelMap, values: Iterable[int] | None = None,
                        surface: bool = True, cancel: CancelToken | None = None, areas: SurfaceAreas | None = None,
                        emit: Callable[[list[SegmentStats]], None] | None = None) -> list[SegmentStats]:
    """The statistics of each label (see core/statistics.py); ``volume`` None: no intensity statistics.

    ``areas``: the surface areas measured before; then the statistics come in two steps, for the app's dock:
    everything but the areas not known yet (about a second for a large organ), given to ``emit`` (their
    ``surface_mm2`` None) when any area is missing, then the missing areas, smallest label first (seconds for a
    large organ; a cancel between them keeps those measured in ``areas``)."""
    values = None if values is None else list(values)
    if not surface or areas is None:
        return label_statistics(volume, labels, values, surface, cancel)
    affine = labels.affine
    first = label_statistics(volume, labels, values, True, cancel, area=lambda value, m: areas.known(m, affine))
    areas.capacity = max(areas.capacity, 2 * len(first))  # every label's area and its last one stay known
    missing = sorted((s for s in first if s.surface_mm2 is None), key=lambda s: s.voxels)
    if not missing:
        return first
    if emit is not None:
        emit(first)
    boxes = ndimage.find_objects(labels.labels)
    measured = {}
    for s in missing:
        check(cancel)
        box = boxes[s.label - 1]  # not empty: an empty label's area (0) is known without a mesh
        measured[s.label] = areas.measure(labels.labels[box] == s.label, affine, cancel)
    return [replace(s, surface_mm2=measured[s.label]) if s.label in measured else s for s in first]


def preview_step(box_shape: tuple[int, ...], budget: int = PREVIEW_VOXELS) -> int:
    """The sampling step that keeps a box of ``box_shape`` voxels within ``budget``."""
    return max(1, math.ceil((float(np.prod(box_shape)) / budget) ** (1 / 3)))


def label_surfaces(labels: np.ndarray, affine: np.ndarray, values: Iterable[int], preview: bool = True,
                   smoothing: float = mesh.SMOOTHING, decimate: float = 0.0, progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None) -> dict[int, Mesh]:
    """The surface of each of ``values`` in ``labels`` (``(z, y, x)`` on ``affine``'s grid), in world RAS mm;
    an absent value is left out. ``preview``: sampled coarser where a label's box is large (the 3-D view);
    False: at full resolution (export)."""
    values = [int(v) for v in values]
    labels = np.asarray(labels)
    boxes = ndimage.find_objects(labels) if labels.dtype.kind in "ui" else []
    out: dict[int, Mesh] = {}
    for done, value in enumerate(values):
        report(progress, done, len(values), f"surface of label {value}")
        check(cancel)
        box = boxes[value - 1] if 0 < value <= len(boxes) else None
        if box is None:
            continue
        step = preview_step(tuple(s.stop - s.start for s in box)) if preview else 1
        out[value] = mesh.surface(labels[box] == value, affine, smoothing, decimate, step=step,
                                  origin=tuple(s.start for s in box), cancel=cancel)
    report(progress, len(values), len(values), "surfaces ready")
    return out
