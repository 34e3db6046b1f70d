"""Segmentation metrics per label: Dice, IoU, HD95 (mm), volumes (mL); per volume and per slice.

Empty cases (documented, and tested):
* truth and prediction both empty: Dice = IoU = 1, HD95 = 0 (nothing to find, nothing found);
* exactly one of them empty: Dice = IoU = 0, HD95 = inf (no surface to measure a distance to; JSON
  writes ``null`` with ``"hd95_defined": false``).
Voxels labelled 255 ("not annotated") in the truth are excluded from every metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from unetgui.core.volume import UNANNOTATED


@dataclass(frozen=True)
class LabelMetrics:
    label: int
    dice: float
    iou: float
    hd95_mm: float  # inf when exactly one of prediction/truth is empty
    volume_pred_ml: float
    volume_truth_ml: float

    def to_json(self) -> dict:
        finite = math.isfinite(self.hd95_mm)
        return {"label": self.label, "dice": self.dice, "iou": self.iou,
                "hd95_mm": self.hd95_mm if finite else None, "hd95_defined": finite,
                "volume_pred_ml": self.volume_pred_ml, "volume_truth_ml": self.volume_truth_ml}


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1), border_value=0)


def _bounding_box(*masks: np.ndarray) -> tuple[slice, ...]:
    """The box around every voxel of ``masks``, one voxel wider on each side (where the array allows)."""
    union = np.logical_or.reduce(masks)
    box = []
    for axis in range(union.ndim):
        hit = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        box.append(slice(max(int(hit[0]) - 1, 0), min(int(hit[-1]) + 2, union.shape[axis])))
    return tuple(box)


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    """The 95 % Hausdorff distance in mm (``spacing`` in the arrays' axis order), MONAI's convention: the
    larger of the two directed 95th percentiles of the surface distances (prediction to truth, truth to
    prediction). Computed in the masks' bounding box (the distances within it are exact: every surface
    voxel lies inside), so a 512 x 512 x 600 volume with a small structure needs little memory."""
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return math.inf
    box = _bounding_box(pred, truth)
    # the box's edges are background (or the array's edge, which erosion treats as background anyway)
    sp, st = _surface(pred[box]), _surface(truth[box])
    # distance from every voxel to the nearest surface voxel of the other mask, in mm
    to_truth = ndimage.distance_transform_edt(~st, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return float(max(np.percentile(to_truth[sp], 95), np.percentile(to_pred[st], 95)))


def _masks(pred: np.ndarray, truth: np.ndarray, label: int) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Prediction and truth masks of ``label`` on the annotated voxels, their overlap and sizes."""
    valid = truth != UNANNOTATED
    p, t = (pred == label) & valid, (truth == label) & valid
    return p, t, int(np.count_nonzero(p & t)), int(np.count_nonzero(p)), int(np.count_nonzero(t))


def dice(pred: np.ndarray, truth: np.ndarray, label: int) -> float:
    """Dice of one label over the annotated voxels (truth 255 excluded); 1 when both are empty."""
    _, _, inter, sp, st = _masks(pred, truth, label)
    return 1.0 if sp + st == 0 else 2 * inter / (sp + st)


def label_metrics(pred: np.ndarray, truth: np.ndarray, label: int, spacing: tuple[float, ...]) -> LabelMetrics:
    """Metrics of one label for arrays of any dimension (``spacing`` in mm, same axis order)."""
    p, t, inter, sp, st = _masks(pred, truth, label)
    union = sp + st - inter
    dice = 1.0 if sp + st == 0 else 2 * inter / (sp + st)
    iou = 1.0 if union == 0 else inter / union
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return LabelMetrics(label, dice, iou, hd95(p, t, spacing), sp * voxel_ml, st * voxel_ml)


def evaluate(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float],
             labels: list[int] | None = None) -> list[LabelMetrics]:
    """Per-label metrics over the whole volume ``(z, y, x)``; ``labels`` default: all values present."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    if labels is None:
        present = np.union1d(np.unique(pred), np.unique(truth[truth != UNANNOTATED]))
        labels = [int(v) for v in present if 0 < v < UNANNOTATED]
    return [label_metrics(pred, truth, v, spacing) for v in labels]


def evaluate_set(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float], slices=None,
                 labels: list[int] | None = None) -> list[LabelMetrics]:
    """Per-label metrics of the slices ``slices`` of ``(z, y, x)`` volumes (None: all), the one rule for a slice
    set in unetgui (the app's Evaluate, ``unetgui evaluate``, a data set's cases):

    * the whole volume: everything in 3-D, HD95 with the slice distance;
    * any other set (validation or test slices picked here and there, the slices a label file annotates):
      Dice, IoU and volumes over the set's voxels, and HD95 per slice in 2-D with the in-plane spacing,
      averaged over the slices that have the label in both masks. A slice with the label in one mask only
      has no distance in its plane: the set's HD95 is then inf (undefined), as for a volume with one side
      empty, so a missed structure or a false blob is never averaged away. Measuring a part of a volume in
      3-D would stack slices that lie far apart as neighbours, or make a single slice all surface.
    """
    depth = pred.shape[0]
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    chosen = list(range(depth)) if slices is None else sorted(set(int(z) for z in slices))
    if len(chosen) == depth:
        return evaluate(pred, truth, spacing, labels)
    p, t = pred[chosen], truth[chosen]
    if labels is None:
        present = np.union1d(np.unique(p), np.unique(t[t != UNANNOTATED]))
        labels = [int(v) for v in present if 0 < v < UNANNOTATED]
    out = []
    for value in labels:
        _, _, inter, sp, st = _masks(p, t, value)  # counts (Dice, IoU, volumes) do not depend on adjacency
        union, voxel_ml = sp + st - inter, float(np.prod(spacing)) / 1000.0
        per_slice = [label_metrics(p[k], t[k], value, spacing[1:]).hd95_mm for k in range(len(chosen))]
        present = [bool(((p[k] == value) & (t[k] != UNANNOTATED)).any()) for k in range(len(chosen))]
        both = [d for d, here in zip(per_slice, present) if here and math.isfinite(d)]
        hd = math.inf if any(math.isinf(d) for d in per_slice) else (float(np.mean(both)) if both else 0.0)
        out.append(LabelMetrics(value, 1.0 if sp + st == 0 else 2 * inter / (sp + st), 1.0 if union == 0 else inter / union,
                                hd, sp * voxel_ml, st * voxel_ml))
    return out


def evaluate_slices(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float], label: int,
                    slices: list[int] | None = None) -> dict[int, LabelMetrics]:
    """Per-slice metrics of one label (2-D HD95 with the in-plane spacing)."""
    chosen = range(pred.shape[0]) if slices is None else slices
    return {z: label_metrics(pred[z], truth[z], label, spacing[1:]) for z in chosen}
