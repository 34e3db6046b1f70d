"""Soft Dice + cross-entropy, both masked: pixels labelled 255 ("not annotated") carry no loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unetgui.core.volume import UNANNOTATED


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1e-5,
                 weights: torch.Tensor | None = None, dice_weight: float = 1.0,
                 foreground_weight: float = 1.0) -> torch.Tensor:
    """``logits`` (B, C, H, W), ``labels`` (B, H, W) int64 with 255 = ignore -> scalar loss.

    Cross-entropy averaged over annotated pixels (each pixel's term times ``weights`` (B, H, W) when given:
    the border weight map; a labelled pixel's term times ``foreground_weight``, normalised by the summed
    weights) plus ``dice_weight`` x (1 - soft Dice) averaged over the foreground classes, computed over the
    whole batch ("batch Dice", as nnU-Net does for 2-D; nnU-Net weighs both 1).
    """
    valid = labels != UNANNOTATED
    # no host synchronisation (a GPU step must not wait for its own result): no "any annotated pixel?" test;
    # a batch without one gets a zero loss that keeps the graph (the ignored pixels' terms are 0)
    per_pixel = F.cross_entropy(logits.float(), labels, ignore_index=UNANNOTATED, reduction="none")
    if weights is not None:
        per_pixel = per_pixel * weights
    if foreground_weight != 1.0:
        w = torch.where((labels > 0) & valid, foreground_weight, 1.0)
        ce = (per_pixel * w).sum() / (w * valid).sum().clamp(min=1)
    else:
        ce = per_pixel.sum() / valid.sum().clamp(min=1)
    probs = torch.softmax(logits.float(), dim=1)
    classes = logits.shape[1]
    target = F.one_hot(torch.where(valid, labels, 0), classes).permute(0, 3, 1, 2).float()
    mask = valid.unsqueeze(1).float()
    dims = (0, 2, 3)
    intersection = (probs * target * mask).sum(dims)
    denominator = (probs * mask).sum(dims) + (target * mask).sum(dims)
    dice = (2 * intersection + smooth) / (denominator + smooth)
    return ce + dice_weight * (1 - dice[1:].mean())


def hard_dice_counts(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per class (tp, fp, fn) of the argmax prediction over annotated pixels: ``(C, 3)`` int64.

    Background is row 0, so ``out[:, 0].sum() / (out[:, 0] + out[:, 2]).sum()`` is the pixel accuracy.
    """
    pred = logits.argmax(1)
    valid = labels != UNANNOTATED
    rows = []
    for c in range(logits.shape[1]):
        p, t = (pred == c) & valid, (labels == c) & valid
        rows.append(torch.stack([(p & t).sum(), (p & ~t).sum(), (~p & t).sum()]))
    return torch.stack(rows)  # on the logits' device: counts are summed there and read back once
