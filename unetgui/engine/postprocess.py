"""Post-processing decided on data (nnU-Net's rule): keep only the largest 3-D connected component of a
label when doing so does not lower the Dice on the annotated slices. The decision is stored in the model
file (``info["postprocessing"]``) and applied by ``predict`` and the app whenever a whole volume is segmented.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from unetgui.engine.metrics import dice

KEY = "largest_component"  # label values whose largest 3-D component alone is kept


def largest_component(labels: np.ndarray, values: list[int]) -> np.ndarray:
    """``labels`` ``(z, y, x)`` label values -> a copy where each of ``values`` keeps only its largest
    face-connected 3-D component (the rest becomes background)."""
    out = labels.copy()
    for value in values:
        mask = labels == value
        components, n = ndimage.label(mask)
        if n <= 1:
            continue
        sizes = np.bincount(components.ravel())[1:]
        out[mask & (components != 1 + int(np.argmax(sizes)))] = 0
    return out


def decide(predicted: list[np.ndarray], truth: list[np.ndarray], values: list[int]) -> dict:
    """Which labels get :func:`largest_component`: those whose Dice over the annotated voxels of all volumes
    (``truth`` 255 = not annotated) is not lower with it. Returns the record stored in the model file."""
    chosen, scores = [], {}
    for value in values:
        before = np.mean([dice(p, t, value) for p, t in zip(predicted, truth)])
        after = np.mean([dice(largest_component(p, [value]), t, value) for p, t in zip(predicted, truth)])
        scores[str(value)] = {"dice": round(float(before), 4), "dice_largest_component": round(float(after), 4)}
        if after >= before - 1e-6:
            chosen.append(int(value))
    return {KEY: chosen, "measured_on": "annotated slices", "scores": scores}


def wanted(record: dict | None) -> bool:
    """Whether a model's stored post-processing changes anything (so a whole volume must be collected)."""
    return bool((record or {}).get(KEY))


def apply(labels: np.ndarray, record: dict | None) -> np.ndarray:
    """Apply a model's stored post-processing to a whole predicted volume ``(z, y, x)`` of label values."""
    values = [int(v) for v in (record or {}).get(KEY, [])]
    return largest_component(labels, values) if values else labels
