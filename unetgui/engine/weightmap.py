"""The U-Net paper's border weight map (Ronneberger et al. 2015, eq. 2), for labels with touching objects.

A pixel squeezed between two objects gets a large cross-entropy weight, so that the thin line separating
touching cells (or the gap between touching organs) is learnt, not blurred over:

    w(x) = 1 + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

with d1, d2 the distances to the nearest and the second-nearest object. Objects are the connected components
of every class, background included, and a pixel measures its distance only to objects of other classes than
its own: on EM membranes (label = membrane) a membrane pixel between two cells (background components) is
stressed, a cell's interior is not; on touching cells (label = cell) the background gap between two of them
is. The paper's class-balancing term is left out: the Dice term and the foreground-aware sampling balance the
classes here. Written by hand because no library in our stack computes it; cv2 gives the components and the
distance transforms.
"""

from __future__ import annotations

import cv2
import numpy as np

from unetgui.core.volume import UNANNOTATED

W0, SIGMA = 10.0, 5.0  # the paper's values (pixels at its working resolution)


def border_weights(classes: np.ndarray, w0: float = W0, sigma: float = SIGMA) -> np.ndarray:
    """``(y, x)`` class indices (255 = not annotated) -> ``(y, x)`` float32 weights >= 1."""
    h, w = classes.shape
    d1 = np.full((h, w), np.inf, np.float32)
    d2 = np.full((h, w), np.inf, np.float32)
    margin = int(np.ceil(4 * sigma))  # beyond d1 + d2 = 4 sigma the extra weight is below w0 * 3e-4
    for value in np.unique(classes):
        if value == UNANNOTATED:
            continue
        count, components, boxes, _ = cv2.connectedComponentsWithStats((classes == value).astype(np.uint8), connectivity=4)
        for index in range(1, count):
            x, y, bw, bh = boxes[index, :4]
            y0, x0 = max(0, y - margin), max(0, x - margin)
            y1, x1 = min(h, y + bh + margin), min(w, x + bw + margin)
            outside = (components[y0:y1, x0:x1] != index).astype(np.uint8)
            distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            other = classes[y0:y1, x0:x1] != value
            near1, near2 = d1[y0:y1, x0:x1], d2[y0:y1, x0:x1]  # views: updated in place
            closer = other & (distance < near1)
            second = other & ~closer & (distance < near2)
            near2[closer] = near1[closer]
            near1[closer] = distance[closer]
            near2[second] = distance[second]
    total = d1 + d2  # inf where fewer than two objects are near
    return (1.0 + w0 * np.exp(-np.square(total) / (2 * sigma * sigma))).astype(np.float32)
