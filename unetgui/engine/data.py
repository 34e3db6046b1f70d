"""Training data: annotated slices from volumes or 2-D image stacks, the train/validation split, and
foreground-aware patch sampling.

Sparse annotation is normal: label 255 means "not annotated" (no loss there), and slices without any
annotated voxel are not training data at all. A slice annotated over less than :data:`COMPLETE_SHARE` of its
voxels (the strokes of corrective annotation) trains but never validates, and does not count toward the
few-slice rules: its Dice would only measure the strokes (core.volume.slice_coverage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unetgui.core.errors import UnetguiError
from unetgui.core.volume import UNANNOTATED, slice_coverage
from unetgui.engine.preprocessing import Preprocessing, resize_slices


@dataclass
class Case:
    """One volume prepared for training: normalised float32 image and labels at the working size."""

    name: str
    image: np.ndarray  # (z, y, x) float32, normalised (in memory, or memory-mapped from the cache)
    labels: np.ndarray  # (z, y, x) uint8, 255 = not annotated
    annotated: tuple[int, ...]  # slices with at least one annotated voxel
    # label value -> sampled foreground locations (n, 3) (z, y, x): the cache's index (engine/cache.py), so
    # that foreground patches are drawn without scanning memory-mapped labels; None: found per slice
    foreground: dict[int, np.ndarray] | None = None
    partial: tuple[int, ...] = ()  # annotated slices with strokes only (see COMPLETE_SHARE): train, never validate

    @property
    def complete(self) -> tuple[int, ...]:
        """The annotated slices that are not partial: what validates and counts as an annotated slice."""
        partial = set(self.partial)
        return tuple(z for z in self.annotated if z not in partial)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)  # type: ignore[return-value]


class LabelView:
    """Labels mapped through a lookup table on access, so a memory-mapped volume stays on disk."""

    def __init__(self, labels: np.ndarray, lut: np.ndarray) -> None:
        self.labels, self.lut = labels, lut
        self.shape, self.dtype = labels.shape, lut.dtype

    def __getitem__(self, index) -> np.ndarray:
        return self.lut[np.asarray(self.labels[index])]


SliceRef = tuple[int, int]  # (case index, slice index)

def prepare_case(name: str, voxels: np.ndarray, labels: np.ndarray, pre: Preprocessing) -> Case:
    """Normalise and resize one annotated volume."""
    if voxels.shape != labels.shape:
        raise UnetguiError(f"{name}: image {voxels.shape} and labels {labels.shape} differ in shape")
    image = resize_slices(pre.normalize(voxels, pre.volume_stats(voxels)), pre.working_shape(voxels.shape[1:]))
    return with_labels(Case(name, image, np.zeros((0, 0, 0), np.uint8), ()), labels)


def with_labels(case: Case, labels: np.ndarray) -> Case:
    """``case`` (its image as it is: in memory or memory-mapped) with labels on the native grid resized to
    the image's working size, e.g. the slices reviewed while training runs; no new copy of the image."""
    if labels.shape[0] != case.image.shape[0]:
        raise UnetguiError(f"{case.name}: {labels.shape[0]} label slices for {case.image.shape[0]} image slices")
    annotated, partial = slice_coverage(labels)
    return Case(case.name, case.image, resize_slices(labels, case.image.shape[1:], nearest=True), annotated,
                partial=partial)


def split(cases: list[Case], val_fraction: float = 1 / 6, seed: int = 0,
          holdout_min: int = 0) -> tuple[list[SliceRef], list[SliceRef]]:
    """Train and validation slices. Fewer than ``holdout_min`` complete slices in all: every slice trains,
    none validates. Several volumes with complete slices: split by volume (about ``val_fraction`` of them, at
    least one, never all), their complete slices validate; one: every ~6th complete slice, at least one,
    evenly spread. Partial slices (strokes) always train: a validation Dice on strokes would measure the
    strokes, not the model."""
    refs = [[(c, z) for z in case.annotated] for c, case in enumerate(cases)]
    with_data = [c for c, r in enumerate(refs) if r]
    if not with_data:
        raise UnetguiError("no annotated slice: mark or paint at least one slice before training")
    if sum(len(cases[c].complete) for c in with_data) < holdout_min:
        return [r for c in with_data for r in refs[c]], []
    complete = [[(c, z) for z in case.complete] for c, case in enumerate(cases)]
    with_complete = [c for c in with_data if complete[c]]
    if len(with_complete) >= 2:  # by volume, among those with complete slices: one of them always trains
        rng = np.random.default_rng(seed)
        n_val = min(len(with_complete) - 1, max(1, round(len(with_complete) * val_fraction)))
        val_cases = set(rng.choice(with_complete, n_val, replace=False).tolist())
        val = [r for c in sorted(val_cases) for r in complete[c]]
    else:  # one volume with complete slices: every ~6th of them, evenly spread
        only = [r for c in with_complete for r in complete[c]]
        if len(only) < 2:  # at most one complete slice: nothing to validate on (training loss selects the best epoch)
            return [r for c in with_data for r in refs[c]], []
        n_val = max(1, round(len(only) * val_fraction))
        picks = np.unique(np.linspace(0, len(only) - 1, n_val + 2)[1:-1].round().astype(int))
        val = [only[i] for i in picks]
    held = set(val)
    return [r for c in with_data for r in refs[c] if r not in held], val


def slice_folds(cases: list[Case], count: int) -> list[tuple[list[SliceRef], list[SliceRef]]]:
    """``count`` cross-validation folds over the complete slices of all cases (for too few annotated slices to
    hold some out): fold ``i`` validates every ``count``-th slice from the ``i``-th, so each fold's validation
    slices are spread along the volume, and together the folds validate every complete slice once. Partial
    slices (strokes) train in every fold."""
    refs = [(c, z) for c, case in enumerate(cases) for z in case.complete]
    partial = [(c, z) for c, case in enumerate(cases) for z in case.partial]
    if len(refs) < 2:
        raise UnetguiError(f"{len(refs)} completely annotated slice(s): cross-validation needs at least 2")
    count = max(2, min(count, len(refs)))
    return [([r for j, r in enumerate(refs) if j % count != i] + partial, refs[i::count]) for i in range(count)]


def split_cases(count: int, seed: int = 0, given: list[str] | None = None, test_fraction: float = 0.2,
                val_fraction: float = 1 / 6) -> dict[str, list[int]]:
    """Split ``count`` cases of a data set into ``train``, ``val`` and ``test`` (indices), by case: the
    splits a case was given (``"train"``, ``"val"``, ``"test"``; ``""`` for none) are kept, and the others are
    drawn (seeded) so that about ``test_fraction`` of all cases test and ``val_fraction`` of the rest
    validate. With fewer than 3 cases nothing is held out for testing; with fewer than 2 left, none validates."""
    given = list(given or [""] * count)
    if len(given) != count:
        raise UnetguiError("one split (or none) per case")
    out: dict[str, list[int]] = {name: [i for i, g in enumerate(given) if g == name] for name in ("train", "val", "test")}
    free = [i for i, g in enumerate(given) if not g]
    rng = np.random.default_rng(seed)
    free = [free[i] for i in rng.permutation(len(free))]
    n_test = max(0, round(count * test_fraction) - len(out["test"])) if count >= 3 else 0
    out["test"] += free[:n_test]
    free = free[n_test:]
    left = len(free) + len(out["train"]) + len(out["val"])
    n_val = max(0, min(len(free) - 1, round(left * val_fraction) - len(out["val"]))) if left >= 2 else 0
    if not out["val"] and left >= 2:
        n_val = max(n_val, 1)
    out["val"] += free[:n_val]
    out["train"] += free[n_val:]
    if not out["train"]:
        raise UnetguiError("no case left to train on: the split gives every case to validation or testing")
    return {name: sorted(indices) for name, indices in out.items()}


def refs_of_cases(cases: list[Case], train: list[int], val: list[int]) -> tuple[list[SliceRef], list[SliceRef]]:
    """Training and validation slices of a split made by case (see :func:`split_cases`)."""
    return ([(c, z) for c in train for z in cases[c].annotated], [(c, z) for c in val for z in cases[c].annotated])


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
    (each label present in a slice equally often, so a rare label is sampled as much as a common one). The
    other patches of a partial slice (strokes) are centred near one of its annotated voxels, background
    strokes included: a patch of a mostly unannotated slice placed at random would carry no loss."""

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
        self._strokes: dict[SliceRef, np.ndarray] = {}  # flat indices of the annotated voxels of partial slices
        # cached cases: their foreground locations in the training slices, per label (see Case.foreground)
        self._located: dict[int, list[np.ndarray]] = {}
        wanted: dict[int, set[int]] = {}
        for c, z in self.refs:
            wanted.setdefault(c, set()).add(z)
        for c, zs in wanted.items():
            if cases[c].foreground is not None:
                keep = np.fromiter(zs, np.int64)
                per_label = [loc[np.isin(loc[:, 0], keep)] for loc in cases[c].foreground.values()]
                if any(len(p) for p in per_label):
                    self._located[c] = [p for p in per_label if len(p)]
        for ref in self.refs:
            if cases[ref[0]].foreground is not None:
                continue
            lab = cases[ref[0]].labels[ref[1]]
            per_label = [np.flatnonzero(lab == v) for v in np.unique(lab) if v not in (0, UNANNOTATED)]
            if per_label:
                self._foreground[ref] = per_label
            if ref[1] in cases[ref[0]].partial:
                self._strokes[ref] = np.flatnonzero(lab != UNANNOTATED)

    def set_refs(self, refs: list[SliceRef]) -> None:
        """Replace the training slices (slices reviewed during training join at the next epoch)."""
        fresh = PatchSampler(self.cases, refs, self.patch, self.context, self.foreground_fraction)
        self.refs, self._foreground, self._located, self._strokes = fresh.refs, fresh._foreground, fresh._located, fresh._strokes

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
            located = self._located.get(ref[0])
            centred = False
            if (fg is not None or located is not None) and self.rng.random() < self.foreground_fraction:
                if located is not None:  # a cached case: a location of a random label, which picks the slice
                    places = located[self.rng.integers(len(located))]
                    z, cy, cx = (int(v) for v in places[self.rng.integers(len(places))])
                    ref = (ref[0], z)
                else:
                    voxels = fg[self.rng.integers(len(fg))]
                    cy, cx = divmod(int(voxels[self.rng.integers(voxels.size)]), w)
                centred = True
            elif (strokes := self._strokes.get(ref)) is not None and strokes.size:
                cy, cx = divmod(int(strokes[self.rng.integers(strokes.size)]), w)
                centred = True
            if centred:
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
