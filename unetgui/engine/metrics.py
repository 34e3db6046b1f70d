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


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    """95th percentile of the symmetric surface distances in mm (``spacing`` in the arrays' axis order)."""
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return math.inf
    sp, st = _surface(pred), _surface(truth)
    # distance from every voxel to the nearest surface voxel of the other mask, in mm
    to_truth = ndimage.distance_transform_edt(~st, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
    distances = np.concatenate([to_truth[sp], to_pred[st]])
    return float(np.percentile(distances, 95))


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


def evaluate_slices(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float], label: int,
                    slices: list[int] | None = None) -> dict[int, LabelMetrics]:
    """Per-slice metrics of one label (2-D HD95 with the in-plane spacing)."""
    chosen = range(pred.shape[0]) if slices is None else slices
    return {z: label_metrics(pred[z], truth[z], label, spacing[1:]) for z in chosen}
