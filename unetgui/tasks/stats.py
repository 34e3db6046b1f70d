"""See and measure a segmentation: the segment statistics (the app's Statistics dock, ``unetgui stats`` and the
export's metrics CSV all measure through :func:`document_statistics`) and the label surfaces (the 3-D view's
:func:`label_surfaces`, the export's meshes).
"""

from __future__ import annotations

import math
from typing import Iterable

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


def document_statistics(volume: Volume | None, labels: LabelMap, values: Iterable[int] | None = None,
                        surface: bool = True, cancel: CancelToken | None = None) -> list[SegmentStats]:
    """The statistics of each label (see core/statistics.py); ``volume`` None: no intensity statistics."""
    return label_statistics(volume, labels, None if values is None else list(values), surface, cancel)


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
