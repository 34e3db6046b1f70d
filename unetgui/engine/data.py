"""Training data: annotated slices from volumes or 2-D image stacks, the train/validation split, and
foreground-aware patch sampling.

Sparse annotation is normal: label 255 means "not annotated" (no loss there), and slices without any
annotated voxel are not training data at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unetgui.core.errors import UnetguiError
from unetgui.core.volume import UNANNOTATED
from unetgui.engine.preprocessing import Preprocessing, resize_slices


@dataclass
class Case:
    """One volume prepared for training: normalised float32 image and labels at the working size."""

    name: str
    image: np.ndarray  # (z, y, x) float32, normalised
    labels: np.ndarray  # (z, y, x) uint8, 255 = not annotated
    annotated: tuple[int, ...]  # slices with at least one annotated voxel

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)  # type: ignore[return-value]


SliceRef = tuple[int, int]  # (case index, slice index)


def prepare_case(name: str, voxels: np.ndarray, labels: np.ndarray, pre: Preprocessing) -> Case:
    """Normalise and resize one annotated volume; only annotated slices are kept in memory at full cost."""
    if voxels.shape != labels.shape:
        raise UnetguiError(f"{name}: image {voxels.shape} and labels {labels.shape} differ in shape")
    annotated = tuple(int(z) for z in np.flatnonzero((labels != UNANNOTATED).any(axis=(1, 2))))
    stats = pre.volume_stats(voxels)
    target = pre.working_shape(voxels.shape[1:])
    image = resize_slices(pre.normalize(voxels, stats), target)
    return Case(name, image, resize_slices(labels, target, nearest=True), annotated)


def split(cases: list[Case], val_fraction: float = 1 / 6, seed: int = 0,
          holdout_min: int = 0) -> tuple[list[SliceRef], list[SliceRef]]:
    """Train and validation slices. Fewer than ``holdout_min`` annotated slices in all: every slice trains,
    none validates. Several volumes: split by volume (about ``val_fraction`` of them, at least one, never
    all); one volume: every ~6th annotated slice, at least one, evenly spread."""
    refs = [[(c, z) for z in case.annotated] for c, case in enumerate(cases)]
    with_data = [c for c, r in enumerate(refs) if r]
    if not with_data:
        raise UnetguiError("no annotated slice: mark or paint at least one slice before training")
    if sum(len(r) for r in refs) < holdout_min:
        return [r for c in with_data for r in refs[c]], []
    if len(with_data) >= 2:
        rng = np.random.default_rng(seed)
        n_val = min(len(with_data) - 1, max(1, round(len(with_data) * val_fraction)))
        val_cases = set(rng.choice(with_data, n_val, replace=False).tolist())
        train = [r for c in with_data if c not in val_cases for r in refs[c]]
        val = [r for c in sorted(val_cases) for r in refs[c]]
        return train, val
    only = refs[with_data[0]]
    if len(only) < 2:
        return only, []  # one annotated slice: nothing to validate on (training loss selects the best epoch)
    n_val = max(1, round(len(only) * val_fraction))
    picks = np.unique(np.linspace(0, len(only) - 1, n_val + 2)[1:-1].round().astype(int))
    val = [only[i] for i in picks]
    return [r for r in only if r not in val], val


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """Pad the last two axes ``(..., y, x)`` at their ends to multiples of ``multiple``: mirrored where the image
    is larger than the padding, else its edge repeated (the U-Net's input rule, for training and inference)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if min(h, w) > max(ph, pw) else "edge"
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode=mode)


def context_stack(image: np.ndarray, z: int, context: int) -> np.ndarray:
    """Slice ``z`` with ``context`` neighbours on each side as channels ``(1 + 2*context, y, x)``; edges repeat."""
    idx = np.clip(np.arange(z - context, z + context + 1), 0, image.shape[0] - 1)
    return image[idx]


class PatchSampler:
    """Random training patches ``(py, px)``; a share of them centred near a voxel of a randomly chosen label
    (each label present in a slice equally often, so a rare label is sampled as much as a common one)."""

    def __init__(self, cases: list[Case], refs: list[SliceRef], patch: int | tuple[int, int], context: int,
                 foreground_fraction: float = 0.5, seed: int = 0) -> None:
        if not refs:
            raise UnetguiError("no training slices")
        self.cases, self.refs, self.context = cases, list(refs), context
        self.patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
        self.foreground_fraction = foreground_fraction
        self.rng = np.random.default_rng(seed)
        self.weights: dict[SliceRef, np.ndarray] = {}  # loss weight maps of some slices (others weigh 1)
        self._foreground: dict[SliceRef, list[np.ndarray]] = {}
        for ref in self.refs:
            lab = cases[ref[0]].labels[ref[1]]
            per_label = [np.flatnonzero(lab == v) for v in np.unique(lab) if v not in (0, UNANNOTATED)]
            if per_label:
                self._foreground[ref] = per_label

    def set_refs(self, refs: list[SliceRef]) -> None:
        """Replace the training slices (slices reviewed during training join at the next epoch)."""
        fresh = PatchSampler(self.cases, refs, self.patch, self.context, self.foreground_fraction)
        self.refs, self._foreground = fresh.refs, fresh._foreground

    def batch(self, size: int, with_weights: bool = False) -> tuple[np.ndarray, ...]:
        """``(size, channels, py, px)`` float32 images and ``(size, py, px)`` uint8 labels (255 outside images);
        ``with_weights``: also the ``(size, py, px)`` float32 loss weights (see :attr:`weights`)."""
        py, px = self.patch
        c = 1 + 2 * self.context
        images = np.zeros((size, c, py, px), np.float32)
        labels = np.full((size, py, px), UNANNOTATED, np.uint8)
        weights = np.ones((size, py, px), np.float32)
        for b in range(size):
            ref = self.refs[self.rng.integers(len(self.refs))]
            case = self.cases[ref[0]]
            h, w = case.shape[1:]
            fg = self._foreground.get(ref)
            if fg is not None and self.rng.random() < self.foreground_fraction:
                voxels = fg[self.rng.integers(len(fg))]
                cy, cx = divmod(int(voxels[self.rng.integers(voxels.size)]), w)
                y0 = int(np.clip(cy - py // 2 + self.rng.integers(-py // 4, py // 4 + 1), min(0, h - py), max(0, h - py)))
                x0 = int(np.clip(cx - px // 2 + self.rng.integers(-px // 4, px // 4 + 1), min(0, w - px), max(0, w - px)))
            else:
                y0 = int(self.rng.integers(min(0, h - py), max(0, h - py) + 1))
                x0 = int(self.rng.integers(min(0, w - px), max(0, w - px) + 1))
            # copy the overlap of the patch with the image (patches may stick out of small images)
            sy, sx = max(0, y0), max(0, x0)
            ey, ex = min(h, y0 + py), min(w, x0 + px)
            images[b, :, sy - y0:ey - y0, sx - x0:ex - x0] = context_stack(case.image, ref[1], self.context)[:, sy:ey, sx:ex]
            labels[b, sy - y0:ey - y0, sx - x0:ex - x0] = case.labels[ref[1], sy:ey, sx:ex]
            if ref in self.weights:
                weights[b, sy - y0:ey - y0, sx - x0:ex - x0] = self.weights[ref][sy:ey, sx:ex]
        return (images, labels, weights) if with_weights else (images, labels)
