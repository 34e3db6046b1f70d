"""The statistics of a document's labels (core/statistics.py, with the surface area of formats/mesh.py) and their
one writer: the rows of the metrics CSV, ``unetgui stats --csv`` and ``--json``.

The CSV has a ``section`` column: ``labels`` rows hold :data:`~unetgui.core.statistics.COLUMNS` and
``slices_with_label``, ``first_slice``, ``last_slice`` (1-based, empty for an absent label); ``slice_area`` rows
hold ``label``, ``name``, ``slice`` (1-based) and ``area_mm2`` for each slice the label is on; ``piece`` rows hold
:data:`PIECE_COLUMNS` for each connected piece of a label of more than one (each lesion of a lesion label).
The JSON holds ``{"image": ..., "labels": [row + {"slice_area_mm2": [...], "pieces": [...]}]}`` (areas of every
slice, 0 where absent; every label's pieces, one too), and for a label or piece that is not empty the ends of its
long and short diameters in world RAS mm (``long_axis_ras_mm``, ``short_axis_ras_mm``: [[r, a, s], [r, a, s]]).
Slices are counted from 1 in both (``long_diameter_slice`` too), as the app shows them. Names come from files: one
line each (csvcell then defuses formulas; JSON escapes the rest).
"""

from __future__ import annotations

import json
import math
from typing import Callable

import numpy as np

from unetgui.core import csvcell
from unetgui.core.progress import CancelToken
from unetgui.core.statistics import COLUMNS, Axes, PieceStats, SegmentStats, measure
from unetgui.core.textsafe import one_line
from unetgui.core.volume import UNANNOTATED, LabelMap, Volume
from unetgui.formats import mesh

SLICE_COLUMNS = ("slices_with_label", "first_slice", "last_slice", "slice", "area_mm2")
#: ``piece`` rows: the label's columns of a piece, plus its number (1: the largest)
PIECE_COLUMNS = ("label", "name", "piece", "voxels", "volume_mm3", "volume_ml", "long_diameter_mm",
                 "short_diameter_mm", "long_diameter_slice", "feret_mm", "centroid_r_mm", "centroid_a_mm",
                 "centroid_s_mm")
#: the columns of the statistics CSV (the export's metrics CSV adds its evaluation columns after them)
TABLE_COLUMNS = ("section", *COLUMNS, *SLICE_COLUMNS, "piece")


def label_statistics(volume: Volume | None, labels: LabelMap, values=None, surface: bool = True,
                     cancel: CancelToken | None = None,
                     area: Callable[[int, np.ndarray], float | None] | None = None) -> list[SegmentStats]:
    """Statistics of each label of ``labels`` (the table's labels and any other value used, never the
    not-annotated 255; ``values`` to choose), with the image's intensities when ``volume`` is given (on the
    same grid) and the surface area unless ``surface`` is False: measured on :func:`mesh.surface`, or by
    ``area(value, mask of the label's box)`` when given (None from it: not measured)."""
    if values is None:
        lab = labels.labels
        if lab.dtype.kind == "u" and lab.dtype.itemsize <= 2:  # a count per value: no sort of the whole volume
            present = np.flatnonzero(np.bincount(lab.ravel()))
        else:
            present = np.unique(lab)
        used = {int(v) for v in present if 0 < v < UNANNOTATED}
        values = sorted(set(labels.table.values) | used)
    names = {label.value: label.name for label in labels.table}
    affine = labels.affine
    if surface and area is None:
        area = lambda value, m: mesh.surface(m, affine, cancel=cancel).area()  # noqa: E731
    elif not surface:
        area = None
    return measure(labels.labels, affine, values, names, None if volume is None else volume.voxels,
                   volume.modality if volume is not None else "", area, cancel)


def _clean(value):
    if isinstance(value, str):
        return one_line(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def piece_row(piece: PieceStats, name: str) -> dict:
    """The :data:`PIECE_COLUMNS` of a piece (slices counted from 1, as the app shows them)."""
    r, a, s = piece.centroid_ras
    return {"label": piece.label, "name": one_line(name), "piece": piece.piece, "voxels": piece.voxels,
            "volume_mm3": piece.volume_mm3, "volume_ml": piece.volume_ml, "long_diameter_mm": piece.long_diameter_mm,
            "short_diameter_mm": piece.short_diameter_mm, "long_diameter_slice": piece.long_diameter_slice + 1,
            "feret_mm": piece.feret_mm, "centroid_r_mm": r, "centroid_a_mm": a, "centroid_s_mm": s}


def _row(s: SegmentStats) -> dict:
    """A label's row, its slice counted from 1."""
    row = {k: _clean(v) for k, v in s.row().items()}
    if row["long_diameter_slice"] is not None:
        row["long_diameter_slice"] += 1
    return row


def rows(stats: list[SegmentStats], slices: bool = True) -> list[dict]:
    """CSV rows: one ``labels`` row per label, then its ``slice_area`` rows (slices it is on), then a ``piece``
    row per connected piece of a label of more than one (largest first, at most ``MAX_PIECES``)."""
    out = []
    for s in stats:
        present = np.flatnonzero(s.slice_area_mm2)
        out.append({"section": "labels", **_row(s), "slices_with_label": len(present),
                    "first_slice": int(present[0]) + 1 if present.size else None,
                    "last_slice": int(present[-1]) + 1 if present.size else None})
    if slices:
        for s in stats:
            out += [{"section": "slice_area", "label": s.label, "name": one_line(s.name), "slice": int(z) + 1,
                     "area_mm2": float(s.slice_area_mm2[z])} for z in np.flatnonzero(s.slice_area_mm2)]
    for s in stats:
        if len(s.pieces) > 1:
            out += [{"section": "piece", **piece_row(p, s.name)} for p in s.pieces]
    return out


def csv_text(stats: list[SegmentStats]) -> str:
    return csvcell.table_text(list(TABLE_COLUMNS), rows(stats))


def _axes(axes: Axes | None) -> dict:
    """Where the long and short diameters lie: each one's two ends in world RAS mm (a viewer's calipers)."""
    if axes is None:
        return {}
    return {"long_axis_ras_mm": [list(p) for p in axes.long_ras],
            "short_axis_ras_mm": [list(p) for p in axes.short_ras]}


def json_text(stats: list[SegmentStats], image: str = "") -> str:
    items = [{**_row(s), **_axes(s.axes), "slice_area_mm2": [float(a) for a in s.slice_area_mm2],
              "pieces": [{**piece_row(p, s.name), **_axes(p.axes)} for p in s.pieces]} for s in stats]
    return json.dumps({"image": one_line(image), "labels": items}, indent=1, allow_nan=False) + "\n"
