"""Soft Dice + cross-entropy, both masked: pixels labelled 255 ("not annotated") carry no loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unetgui.core.volume import UNANNOTATED


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1e-5,
                 weights: torch.Tensor | None = None, dice_weight: float = 1.0) -> torch.Tensor:
    """``logits`` (B, C, H, W), ``labels`` (B, H, W) int64 with 255 = ignore -> scalar loss.

    Cross-entropy averaged over annotated pixels (each pixel's term times ``weights`` (B, H, W) when given:
    the border weight map) plus ``dice_weight`` x (1 - soft Dice) averaged over the foreground classes,
    computed over the whole batch ("batch Dice", as nnU-Net does for 2-D; nnU-Net weighs both 1).
    """
    valid = labels != UNANNOTATED
    if not valid.any():
        return logits.sum() * 0.0  # keeps the graph; no annotated pixel in this batch
    if weights is None:
        ce = F.cross_entropy(logits.float(), labels, ignore_index=UNANNOTATED)
    else:
        per_pixel = F.cross_entropy(logits.float(), labels, ignore_index=UNANNOTATED, reduction="none")
        ce = (per_pixel * weights).sum() / valid.sum()
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
    classes = logits.shape[1]
    out = torch.zeros(classes, 3, dtype=torch.int64)
    for c in range(classes):
        p, t = (pred == c) & valid, (labels == c) & valid
        out[c, 0] = (p & t).sum()
        out[c, 1] = (p & ~t).sum()
        out[c, 2] = (~p & t).sum()
    return out
