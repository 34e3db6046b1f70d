"""The inference pipeline's stages as torch operations, so that they run where the model runs.

On a GPU every stage stays on the device and only uint8 results cross to the host; on the CPU the same
functions run in torch around ONNX Runtime's forward pass, so both paths compute the same thing. Each stage
matches the numpy/OpenCV preparation the training data went through (engine/preprocessing.py,
engine/data.py): normalisation with the checkpoint's statistics, 2.5-D context with repeated edges, resizing
as OpenCV does it (area averaging when shrinking, which is its anti-aliasing, bilinear with half-pixel
centres when enlarging), padding (mirrored, or the edge repeated for tiny images), softmax, argmax to label
values, uint8 quantisation and the margin uncertainty (core/ranking.py). Arrays are ``(n, channels, y, x)``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor on ``device`` without waiting for the device: on CUDA through pinned memory with
    a non-blocking copy (a plain ``.to("cuda")`` waits for all queued work first)."""
    if device.type == "cpu":
        return t
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def context_indices(slices: list[int], context: int, depth: int) -> torch.Tensor:
    """``(n, 1 + 2 * context)`` slice indices: each slice with its neighbours, clamped at the volume's ends."""
    offsets = torch.arange(-context, context + 1)
    return (torch.as_tensor(slices).view(-1, 1) + offsets).clamp(0, depth - 1)


def normalize(x: torch.Tensor, stats: tuple[float, float, float, float]) -> torch.Tensor:
    """Clip to ``(low, high)``, subtract the mean, divide by the std; float32 (no float64 on the way)."""
    lo, hi, mean, std = stats
    x = x.float().clamp_(lo, hi)
    return x.sub_(mean).mul_(1.0 / std)


@functools.lru_cache(maxsize=64)
def _area_weights(size_in: int, size_out: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(size_out, size_in)`` on ``device`` (cached there: no copy per batch): the share of each input pixel
    in each output pixel (OpenCV's INTER_AREA for shrinking: the exact overlap of the pixel intervals, each row
    summing to 1)."""
    scale = size_in / size_out
    starts = torch.arange(size_out, dtype=torch.float64) * scale
    ends = starts + scale
    left = torch.arange(size_in, dtype=torch.float64)
    overlap = (torch.minimum(ends[:, None], left[None, :] + 1) - torch.maximum(starts[:, None], left[None, :])).clamp(min=0)
    return (overlap / overlap.sum(dim=1, keepdim=True)).to(device, dtype)


def resize(x: torch.Tensor, shape_yx: tuple[int, int]) -> torch.Tensor:
    """``(n, c, y, x)`` float -> ``(n, c, *shape_yx)`` as :func:`engine.preprocessing.resize_slices` does it:
    shrinking (decided by y) averages areas (a box filter: the anti-aliasing), enlarging is bilinear."""
    h, w = x.shape[-2:]
    th, tw = shape_yx
    if (h, w) == (th, tw):
        return x
    if th >= h:
        return F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False)
    if h % th == 0 and w % tw == 0 and h // th == w // tw:
        return F.avg_pool2d(x, h // th)  # a whole factor: the same averages, computed faster
    ry = _area_weights(h, th, x.device, x.dtype)
    rx = _area_weights(w, tw, x.device, x.dtype)
    return ry @ x @ rx.T


def pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad y and x at their ends to multiples of ``multiple`` (see :func:`engine.data.pad_to_multiple`)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def argmax_classes(probabilities: torch.Tensor) -> torch.Tensor:
    """``(n, classes, y, x)`` -> ``(n, y, x)`` int64 index of the largest class (the first on ties, as
    ``argmax``); one pass per class, which on the CPU is ~20x faster than torch's reduction over dim 1."""
    best, index = probabilities[:, 0], torch.zeros(probabilities[:, 0].shape, dtype=torch.int64, device=probabilities.device)
    for c in range(1, probabilities.shape[1]):
        better = probabilities[:, c] > best
        index = torch.where(better, c, index)
        best = torch.where(better, probabilities[:, c], best)
    return index


def quantize(probabilities: torch.Tensor) -> torch.Tensor:
    """Probabilities 0..1 -> uint8 0..255, rounded half up (the model file's and the overlay's scale)."""
    return (probabilities * 255 + 0.5).clamp_(0, 255).to(torch.uint8)


def margin_uncertainty(quantised: torch.Tensor) -> torch.Tensor:
    """``(n, classes, y, x)`` uint8 -> ``(n, y, x)`` uint8: 255 minus the margin between the two most likely
    classes (:func:`core.ranking.uncertainty` of the same quantised probabilities)."""
    if quantised.shape[1] < 2:
        return torch.zeros((quantised.shape[0], *quantised.shape[2:]), dtype=torch.uint8, device=quantised.device)
    first = torch.maximum(quantised[:, 0], quantised[:, 1])
    second = torch.minimum(quantised[:, 0], quantised[:, 1])
    for c in range(2, quantised.shape[1]):  # one pass per class (no sort over dim 1: slow on the CPU)
        second = torch.maximum(second, torch.minimum(first, quantised[:, c]))
        first = torch.maximum(first, quantised[:, c])
    return 255 - (first - second)  # uint8: first >= second


def slice_scores(uncertainty: torch.Tensor, labels: torch.Tensor, band_px: int, uncertain: float) -> torch.Tensor:
    """Per slice ``(n,)`` float32: :func:`core.ranking.slice_scores` on the device, the summed uncertainty
    (0..1 a pixel) in the predicted structures grown by ``band_px`` pixels (4-connected steps, as scipy's
    binary dilation with the cross) plus every pixel whose uncertainty exceeds ``uncertain``."""
    region = (labels > 0) & (labels != 255)
    for _ in range(band_px):
        grown = region.clone()
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown[:, :, 1:] |= region[:, :, :-1]
        grown[:, :, :-1] |= region[:, :, 1:]
        region = grown
    u = uncertainty.float() / 255.0
    region |= u > uncertain
    return (u * region).sum(dim=(1, 2))


@functools.lru_cache(maxsize=8)
def gaussian_weight(tile: int, device: torch.device) -> torch.Tensor:
    """``(tile, tile)`` blending weight of the sliding window: a Gaussian (sigma = tile / 8), floored at 1e-3."""
    sigma = tile / 8
    g = torch.exp(-((torch.arange(tile, dtype=torch.float64) - (tile - 1) / 2) ** 2) / (2 * sigma**2))
    return torch.outer(g, g).clamp(min=1e-3).to(device, torch.float32)


def window_starts(size: int, tile: int, step: int) -> list[int]:
    """Where the sliding window's tiles start along one side (the last one flush with the end)."""
    return sorted({*range(0, max(size - tile, 0) + 1, step), max(size - tile, 0)})
