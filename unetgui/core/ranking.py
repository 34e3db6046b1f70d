"""Where is the model unsure, and which slice should the annotator correct next?

* :func:`uncertainty` per voxel from the softmax probabilities the segmentation already produced (no extra
  forward pass): ``1 - (p_first - p_second)``, the margin between the two most likely classes, quantised
  to 0..255. With flip test-time augmentation the probabilities are the TTA mean, so disagreement between
  the flips lowers the margin too.
* :func:`slice_scores`: per slice, the summed uncertainty inside and around the predicted structures (the
  predicted foreground dilated by a few pixels, plus any clearly uncertain pixel): roughly the expected
  number of wrong pixels, i.e. what a correction of that slice can gain.
* :func:`rank_slices`: a greedy order of the unreviewed slices: each pick maximises its score damped by
  its distance to the reviewed slices and to the picks before it, so that suggestions spread over the
  volume instead of clustering next to each other or next to what the user already corrected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from unetgui.core.volume import UNANNOTATED

UNCERTAIN = 0.5  # a pixel with uncertainty above this counts wherever it is
BAND_PX = 4  # how far around the predicted structures uncertainty counts


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """``(n, classes, y, x)`` probabilities (uint8 0..255 or float 0..1) -> ``(n, y, x)`` uint8 0..255."""
    p = np.asarray(probabilities)
    scale = 255.0 if p.dtype == np.uint8 else 1.0
    if p.shape[1] < 2:
        return np.zeros((p.shape[0], *p.shape[2:]), np.uint8)
    top = np.sort(p, axis=1)[:, -2:].astype(np.float32) / scale  # second, first
    margin = np.clip(top[:, 1] - top[:, 0], 0.0, 1.0)
    return np.round((1.0 - margin) * 255).astype(np.uint8)


def slice_scores(uncert: np.ndarray, labels: np.ndarray, band_px: int = BAND_PX) -> np.ndarray:
    """Per slice: summed uncertainty (0..1 per pixel) in the predicted structures and a band around them,
    plus clearly uncertain pixels elsewhere. ``uncert`` ``(z, y, x)`` uint8, ``labels`` the prediction."""
    u = np.asarray(uncert, np.float32) / 255.0
    scores = np.zeros(u.shape[0], np.float64)
    structure = ndimage.generate_binary_structure(2, 1)
    for z in range(u.shape[0]):
        fg = (labels[z] > 0) & (labels[z] != UNANNOTATED)
        region = ndimage.binary_dilation(fg, structure, iterations=band_px) if fg.any() else fg
        region = region | (u[z] > UNCERTAIN)
        scores[z] = float(u[z][region].sum())
    return scores


@dataclass(frozen=True)
class Suggestion:
    slice: int
    score: float  # the slice's own score (summed uncertainty)
    priority: float  # the score damped by the distance to reviewed slices and earlier suggestions


def diversity_width(n_slices: int) -> float:
    """How far (in slices) a reviewed slice or an earlier suggestion damps its neighbours."""
    return max(1.0, n_slices / 25.0)


def rank_slices(scores: np.ndarray, reviewed: np.ndarray, count: int | None = None,
                width: float | None = None) -> list[Suggestion]:
    """The unreviewed slices with a score (NaN: not segmented yet) in suggestion order (greedy:
    score x (1 - exp(-(d / width)^2)), d = the distance to the nearest reviewed slice or earlier pick)."""
    scores = np.asarray(scores, np.float64)
    reviewed = np.asarray(reviewed, bool)
    n = scores.shape[0]
    width = diversity_width(n) if width is None else width
    candidates = [z for z in range(n) if not reviewed[z] and np.isfinite(scores[z])]
    scores = np.nan_to_num(scores, nan=0.0)
    anchors = list(np.flatnonzero(reviewed))
    index = np.arange(n)
    distance = np.full(n, np.inf)
    for a in anchors:
        distance = np.minimum(distance, np.abs(index - a))
    picks: list[Suggestion] = []
    remaining = set(candidates)
    limit = len(candidates) if count is None else min(count, len(candidates))
    while remaining and len(picks) < limit:
        damp = 1.0 - np.exp(-(distance / width) ** 2)
        priority = scores * damp
        best = max(remaining, key=lambda z: (priority[z], scores[z], -z))
        picks.append(Suggestion(int(best), float(scores[best]), float(priority[best])))
        remaining.discard(best)
        distance = np.minimum(distance, np.abs(index - best))
    return picks
