"""Post-processing of a whole predicted volume, decided on data and stored in the model file
(``info["postprocessing"]``); applied by ``predict`` and the app whenever a whole volume is segmented.

Two rules per label, both on 3-D objects, i.e. connected components **linked across slices by the slice
spacing**: on thick slices a small or oblique structure's cross-sections on neighbouring slices need not
overlap (a 3 mm structure at 7.5 mm slices), and face connectivity would cut it into one object per slice.
Each voxel of a cross-section links to the nearest cross-section of the neighbouring slice (both ways) when it
lies within ``link_radius(spacing)`` pixels in-plane: the distance a surface inclined by up to 45 degrees moves
from one slice to the next (the slice distance in pixels), capped at ``MAX_LINK_MM``. Isotropic and
near-isotropic volumes link by face connectivity alone. A model records whether its rules were decided on
linked objects (``linked``); a model file without it (older ones) is applied with face connectivity, as decided.

* ``largest_component``: keep only the largest object (nnU-Net's rule), adopted per label when it does not
  lower the Dice on the annotated slices (whole volumes are predicted, so objects run through the others);
* ``annotated_object``: in the volume the user annotated, keep only the objects that reach the structure the
  user drew; adopted per label when the annotated slices show it is safe: each of them shows the label as a
  single object (one lesion, one organ), so anything unconnected to it elsewhere in the volume is a false
  positive (a model trained on two slices of a lesion paints lesion-like tissue at the ends of the volume).
  Several objects on an annotated slice (lesions, vessels) leave it off. Needs the annotation at apply time;
  without it (another volume) only ``largest_component`` applies.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from unetgui.core.volume import UNANNOTATED
from unetgui.engine.metrics import dice

KEY = "largest_component"  # label values whose largest 3-D object alone is kept
ANCHORED = "annotated_object"  # label values whose objects not reaching the annotation are removed
#: in-plane linking across slices is capped at this distance (mm): beyond it two cross-sections are two objects
MAX_LINK_MM = 10.0
#: 2-D components smaller than this (px) on an annotated slice are specks, not objects of their own
SPECK_PX = 4
#: and never more than this many pixels (a header with a broken pixel spacing must not merge whole slices)
MAX_LINK_PX = 64


def link_radius(spacing: tuple[float, float, float] | None) -> int:
    """In-plane pixels within which cross-sections on neighbouring slices link (0: face connectivity);
    ``spacing`` ``(z, y, x)`` mm of the grid, None: isotropic."""
    if spacing is None:
        return 0
    sz, sy, sx = (float(v) for v in spacing)
    pixel = min(sy, sx)
    if not (math.isfinite(sz) and math.isfinite(pixel) and pixel > 0 and sz > 0) or sz < 1.5 * pixel:
        return 0
    return int(min(MAX_LINK_PX, math.ceil(min(sz, MAX_LINK_MM) / max(pixel, 1e-3))))


def objects(mask: np.ndarray, radius: int) -> tuple[np.ndarray, int]:
    """3-D objects of a boolean ``(z, y, x)`` mask: face-connected in each slice; cross-sections on neighbouring
    slices linked when within ``radius`` px in-plane (``radius`` 0: face connectivity). Returns ``(ids, n)``,
    ids 1..n per voxel, 0 outside the mask."""
    if radius <= 0:
        return ndimage.label(mask)
    ids = np.zeros(mask.shape, np.int32)
    total = 0
    for z in range(mask.shape[0]):
        if mask[z].any():
            ids[z], n = ndimage.label(mask[z])
            ids[z][ids[z] > 0] += total
            total += n
    if total == 0:
        return ids, 0
    parent = np.arange(total + 1)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for z in range(mask.shape[0] - 1):
        if not (mask[z].any() and mask[z + 1].any()):
            continue
        for a, b in ((z, z + 1), (z + 1, z)):
            # every voxel of slice b within the radius of slice a links to the nearest voxel of a
            box = _box(mask[a] | mask[b], radius)
            near, (iy, ix) = ndimage.distance_transform_edt(~mask[a][box], return_indices=True)
            hit = mask[b][box] & (near <= radius)
            if not hit.any():
                continue
            pairs = np.unique(np.stack([ids[b][box][hit], ids[a][box][iy[hit], ix[hit]]], 1), axis=0)
            for p, q in pairs:
                rp, rq = root(int(p)), root(int(q))
                if rp != rq:
                    parent[max(rp, rq)] = min(rp, rq)
    roots = np.array([root(i) for i in range(total + 1)])
    _, compact = np.unique(roots, return_inverse=True)  # root 0 (background) stays 0
    return compact.astype(np.int32)[ids], int(compact.max())


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (slice(max(0, ys[0] - margin), ys[-1] + margin + 1), slice(max(0, xs[0] - margin), xs[-1] + margin + 1))


def largest_component(labels: np.ndarray, values: list[int], radius: int = 0) -> np.ndarray:
    """``labels`` ``(z, y, x)`` label values -> a copy where each of ``values`` keeps only its largest 3-D object
    (see :func:`objects`; the rest becomes background)."""
    out = labels.copy()
    for value in values:
        mask = labels == value
        ids, n = objects(mask, radius)
        if n <= 1:
            continue
        sizes = np.bincount(ids.ravel())[1:]
        out[mask & (ids != 1 + int(np.argmax(sizes)))] = 0
    return out


def annotated_objects(labels: np.ndarray, values: list[int], annotation: np.ndarray, radius: int = 0) -> np.ndarray:
    """A copy of ``labels`` where each of ``values`` keeps only the 3-D objects that reach a voxel the user
    annotated with it (``annotation``: label values, 255 = not annotated, same shape). A label the user drew
    nowhere is left as it is."""
    out = labels.copy()
    for value in values:
        drawn = annotation == value
        if not drawn.any():
            continue
        mask = labels == value
        ids, n = objects(mask | drawn, radius)
        keep = np.zeros(n + 1, bool)
        keep[np.unique(ids[drawn])] = True
        keep[0] = False
        out[mask & ~keep[ids]] = 0
    return out


def single_object(truth: list[np.ndarray], value: int) -> bool:
    """Whether every annotated slice that shows ``value`` shows it as one object (specks aside), and some do."""
    seen = False
    for volume in truth:
        for plane in volume:
            mask = plane == value
            if not mask.any():
                continue
            comps, n = ndimage.label(mask)
            if int((np.bincount(comps.ravel())[1:] >= SPECK_PX).sum()) > 1:
                return False
            seen = True
    return seen


def decide(predicted: list[np.ndarray], truth: list[np.ndarray], values: list[int],
           spacings: list[tuple[float, float, float] | None] | None = None) -> dict:
    """Which labels get which rule (see the module docstring), from whole predicted volumes and their annotation
    (``truth``: 255 = not annotated); ``spacings`` ``(z, y, x)`` mm of each volume's grid. Returns the record
    stored in the model file."""
    spacings = spacings or [None] * len(predicted)
    radii = [link_radius(s) for s in spacings]
    chosen, anchored, scores = [], [], {}
    for value in values:
        before = np.mean([dice(p, t, value) for p, t in zip(predicted, truth)])
        after = np.mean([dice(largest_component(p, [value], r), t, value) for p, t, r in zip(predicted, truth, radii)])
        scores[str(value)] = {"dice": round(float(before), 4), "dice_largest_component": round(float(after), 4)}
        if after >= before - 1e-6:
            chosen.append(int(value))
        if single_object([np.asarray(t) for t in truth], value):
            anchored.append(int(value))
    return {KEY: chosen, ANCHORED: anchored, "measured_on": "annotated slices", "scores": scores,
            "linked": any(radii), "link_radius_px": max(radii, default=0)}


def rule_values(record, key: str) -> list[int]:
    """The label values (1..254) a model file's post-processing ``record`` lists under ``key``; anything else
    there (a file edited by hand, or damaged) is ignored rather than trusted."""
    values = record.get(key) if isinstance(record, dict) else None
    if not isinstance(values, list):
        return []
    return [v for v in values if type(v) is int and 0 < v < UNANNOTATED]


def wanted(record: dict | None) -> bool:
    """Whether a model's stored post-processing changes anything (so a whole volume must be collected)."""
    return bool(rule_values(record, KEY) or rule_values(record, ANCHORED))


def apply(labels: np.ndarray, record: dict | None, spacing: tuple[float, float, float] | None = None,
          annotation: np.ndarray | None = None) -> np.ndarray:
    """Apply a model's stored post-processing to a whole predicted volume ``(z, y, x)`` of label values.

    ``spacing``: ``(z, y, x)`` mm of the volume (objects are linked by it when the model's rules were decided
    so; None: face connectivity); ``annotation``: what the
    user drew on this volume (label values, 255 = not annotated), for the ``annotated_object`` rule; the
    labels it covers keep their objects that reach it, the others get ``largest_component`` when chosen."""
    radius = link_radius(spacing) if isinstance(record, dict) and record.get("linked") is True else 0
    anchored = rule_values(record, ANCHORED)
    if annotation is not None and annotation.shape == labels.shape:
        anchored = [v for v in anchored if (annotation == v).any()]
        if anchored:
            labels = annotated_objects(labels, anchored, annotation, radius)
    else:
        anchored = []
    values = [v for v in rule_values(record, KEY) if v not in anchored]
    return largest_component(labels, values, radius) if values else labels

