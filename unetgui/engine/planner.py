"""The training planner: one function turns a fingerprint of the annotated data, the device and the time
budget into every setting of a training run (nnU-Net's self-configuration, for 2-D and a time budget).

``unetgui train``, the app's training panel and ``unetgui tune`` all go through :func:`plan_training`; a
user's settings arrive as ``overrides`` and are named in the plan, which the model file records.

Rules (constants below; the measurements behind them are in docs/engine.md):

* working size: native, unless the slice is larger than the device's compute cap (256 px on a CPU, 512 on
  a GPU); then shrunk, but never so far that the thinnest annotated structure gets thinner than
  ``MIN_STRUCTURE_PX`` (a thin structure keeps the native grid: membranes, grey matter, vessels);
* patch: the whole slice (padded to the network's multiple) when it fits the device's patch cap, else the cap;
  non-square slices get non-square patches, so a 42 x 76 MR slice is one 48 x 80 patch, not a 256 x 256
  square of padding. Small structures in large slices lower the cap to ``CONTEXT_FACTOR`` times the
  largest structure's extent (at least ``MIN_PATCH``): a batch of the same cost then holds many more
  examples of the structure (a 15 px structure in a 320 px slice: 96 px patches, batch 28, not 256 px, batch 4);
* depth: the deepest network (up to 4 on a CPU, 5 on a GPU) whose bottleneck stays >= ``MIN_BOTTLENECK_PX``;
* batch: a target number of pixels per batch (so a batch costs about the same whatever the slice size);
  steps per epoch from the measured seconds per step and ``TARGET_EPOCH_S``, so an epoch takes about the same
  time for a 40 x 76 MR and a 512 x 512 CT;
* few annotations (fewer than ``FEW_SLICES`` annotated slices): every annotated slice trains, nothing is
  held out, and the model is the exponential moving average of the weights at the end of the budget; the
  curves show the Dice on the annotated slices. With more, every ~6th slice (or ~1/6 of the volumes)
  validates and the best validation epoch is kept;
* elastic deformation (the U-Net paper's) when the budget affords at least ``ELASTIC_MIN_STEPS`` steps: in
  shorter runs it slows learning down more than it regularises;
* a linear warm-up of 30 steps, or 10% of the steps the budget affords when that is fewer;
* fine-tuning from a model: its architecture and preprocessing, a lower peak learning rate, a short warm-up;
* the slicing axis (:func:`choose_axis`): the planes the model trains on and segments, axial unless most of
  the annotation lies in (nearly) complete coronal or sagittal planes, e.g. planes reviewed in those views.

This module needs numpy and scipy only (no torch), so the app can show the plan's defaults at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import ndimage

from unetgui.core.errors import UnetguiError
from unetgui.core.memory import release
from unetgui.core.volume import UNANNOTATED, slice_coverage
from unetgui.engine.config import TrainConfig, UNetConfig, selection

#: fewer annotated slices than this: no held-out validation slice, EMA weights at the end (docs/engine.md)
FEW_SLICES = 10
#: a structure thinner than this many pixels is not shrunk further by the working size
MIN_STRUCTURE_PX = 6.0
#: the U-Net's bottleneck keeps at least this many pixels along the patch's shorter side
MIN_BOTTLENECK_PX = 4
#: a patch spans at least this many times the largest annotated structure (its bounding box), and MIN_PATCH px
CONTEXT_FACTOR = 4
MIN_PATCH = 96
#: a label whose median share of an annotated slice is below this is a small structure (a lesion, grey matter,
#: a vessel): its patches may shrink to ``MIN_PATCH_SMALL`` and more of them are centred on it (docs/engine.md)
SMALL_SHARE = 0.01
MIN_PATCH_SMALL = 64
#: share of the patches centred near a labelled voxel; the rest lie anywhere in the slice
FOREGROUND_FRACTION = 0.5
SMALL_FOREGROUND_FRACTION = 0.8
TARGET_EPOCH_S = 10.0
LEARNING_RATE = 2e-3
#: small structures (SMALL_SHARE): few labelled pixels a step; a higher peak rate fits them within the budget
LEARNING_RATE_SMALL = 4e-3
FINE_TUNE_RATE = 5e-4
DEFAULT_MINUTES_APP = 3.0
EMA_DECAY = 0.99
ELASTIC = True
#: elastic deformation slows the first hundred steps down and pays off only over longer runs (docs/engine.md)
ELASTIC_MIN_STEPS = 150
#: the linear warm-up takes at most this share of the budgeted steps (30 steps, 10 when fine-tuning, otherwise)
WARMUP_SHARE = 0.1
MIN_WARMUP = 5
#: DataLoader processes drawing the batches of cached data sets (engine/loader.py): a GPU step outlasts no
#: batch drawing, a CPU step (~0.5 s) outlasts it a hundredfold
LOADER_WORKERS = {"cuda": 2}
#: early stopping waits, besides the epochs of ``TrainConfig.patience``, this share of the time budget without a
#: better validation Dice: a GPU epoch lasts seconds, and 25 of them are a small part of a 30-minute budget
PATIENCE_SHARE = 0.2
#: the U-Net paper's border weight map (w0; None: off; a user's option for touching objects) - docs/engine.md
BORDER_WEIGHT: float | None = None


@dataclass(frozen=True)
class DeviceProfile:
    """What one kind of device affords: caps on the working size and patch, pixels per batch, model size."""

    kind: str
    max_side: int  # working size cap (longer side), px
    max_patch: int
    batch_pixels: int
    max_batch: int
    max_depth: int
    base: int


PROFILES = {
    "cpu": DeviceProfile("cpu", 256, 256, 4 * 256 * 256, 32, 4, 16),
    "cuda": DeviceProfile("cuda", 512, 512, 16 * 384 * 384, 64, 5, 32),
    "mps": DeviceProfile("mps", 512, 384, 8 * 384 * 384, 32, 5, 32),
}
#: named model sizes the user may pick instead of the planner's (``--preset``, the panel's "Model size")
PRESETS = {"cpu": {"base": 16, "depth": 4, "working_size": 256}, "gpu": {"base": 32, "depth": 5, "working_size": 0},
           "small": {"base": 8, "depth": 3, "working_size": 128}}
OVERRIDES = ("minutes", "epochs", "learning_rate", "batch_size", "patch", "steps_per_epoch", "schedule", "threads",
             "augment", "working_size", "context", "base", "depth", "seed", "weight_decay", "ema", "elastic", "preset",
             "border_weight", "workers", "kernel", "dice_weight", "augment_strength", "axis", "foreground_fraction",
             "foreground_weight")
#: the slicing axes: 0 axial (planes (y, x)), 1 coronal ((z, x)), 2 sagittal ((z, y))
AXIS_NAMES = ("axial", "coronal", "sagittal")
#: a plane whose voxels are at least this much annotated counts as an annotated plane of its axis
PLANE_COVERAGE = 0.5


@dataclass(frozen=True)
class Fingerprint:
    """What the planner knows of the annotated data. Sizes are on the native grid, ``(y, x)`` order."""

    modality: str
    shapes_yx: tuple[tuple[int, int], ...]  # per volume
    spacing_yx: tuple[float, float]  # median in-plane spacing, mm
    annotated: tuple[int, ...]  # complete annotated slices per volume (core.volume.COMPLETE_SHARE; not strokes)
    widths: dict[int, float] = field(default_factory=dict)  # label value -> thinnest structure (px), see below
    fractions: dict[int, float] = field(default_factory=dict)  # label value -> median share of an annotated slice
    extents: dict[int, float] = field(default_factory=dict)  # label value -> largest structure's bounding box side (px)
    intensity: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)  # foreground p0.5, p99.5, mean, std

    @property
    def annotated_total(self) -> int:
        return sum(self.annotated)

    @property
    def shape_yx(self) -> tuple[int, int]:
        """The largest slice, ``(y, x)``."""
        return max(s[0] for s in self.shapes_yx), max(s[1] for s in self.shapes_yx)

    @property
    def thinnest(self) -> float:
        return min(self.widths.values()) if self.widths else math.inf

    @property
    def smallest_share(self) -> float:
        """The smallest label's median share of an annotated slice (1 when nothing is labelled)."""
        return min(self.fractions.values()) if self.fractions else 1.0

    @property
    def small_structure(self) -> bool:
        return self.smallest_share < SMALL_SHARE

    def to_json(self) -> dict:
        data = asdict(self)
        data["widths"] = {str(k): round(v, 2) for k, v in self.widths.items()}
        data["fractions"] = {str(k): round(v, 6) for k, v in self.fractions.items()}
        data["extents"] = {str(k): round(v, 1) for k, v in self.extents.items()}
        return data


def fingerprint(images: list[np.ndarray], labels: list[np.ndarray], modality: str = "",
                spacings: list[tuple[float, float]] | None = None, max_slices: int = 40) -> Fingerprint:
    """Fingerprint annotated volumes: ``images[i]`` ``(z, y, x)`` raw values, ``labels[i]`` label values
    with 255 = not annotated; ``spacings`` in-plane ``(y, x)`` mm per volume.

    A structure's width is the diameter of the largest disc inside one 2-D connected component (twice the
    maximum of the distance transform); a label's width is the 10th percentile over its components (specks
    under 4 px ignored), so one thin part sets it. At most ``max_slices`` annotated slices are measured: the
    complete ones (a stroke's width and share say nothing of the structure), partial ones only without any.
    """
    if len(images) != len(labels):
        raise UnetguiError("one label volume per image is needed")
    annotated, partial = [], []
    for lab in labels:
        some, strokes = slice_coverage(lab)
        annotated.append([z for z in some if z not in set(strokes)])
        partial.append(list(strokes))
        release(lab)  # a memory-mapped volume (the data set cache): read, not kept resident
    widths: dict[int, list[float]] = {}
    extents: dict[int, list[float]] = {}
    fractions: dict[int, list[float]] = {}
    refs = [(i, int(z)) for i, zs in enumerate(annotated if any(annotated) else partial) for z in zs]
    if len(refs) > max_slices:
        refs = [refs[int(k)] for k in np.linspace(0, len(refs) - 1, max_slices).round()]
    fg_values = []
    rng = np.random.default_rng(0)
    for i, z in refs:
        plane = labels[i][z]
        valid = int((plane != UNANNOTATED).sum())
        for value in np.unique(plane):
            if value in (0, UNANNOTATED):
                continue
            mask = plane == value
            fractions.setdefault(int(value), []).append(mask.sum() / max(valid, 1))
            comps, n = ndimage.label(mask)
            edt = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
            areas = ndimage.sum_labels(mask, comps, range(1, n + 1))
            radii = ndimage.maximum(edt, comps, range(1, n + 1))
            boxes = ndimage.find_objects(comps)
            extents.setdefault(int(value), []).extend(max(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in boxes if b)
            widths.setdefault(int(value), []).extend(2.0 * float(r) for r, a in zip(np.atleast_1d(radii), np.atleast_1d(areas)) if a >= 4)
        fg = images[i][z][(plane > 0) & (plane != UNANNOTATED)]
        if fg.size:
            fg_values.append(fg[rng.integers(0, fg.size, min(fg.size, 20_000))].astype(np.float32))
    values = np.concatenate(fg_values) if fg_values else np.zeros(1, np.float32)
    lo, hi = np.percentile(values, (0.5, 99.5))
    spacing = tuple(float(np.median([s[k] for s in spacings])) for k in (0, 1)) if spacings else (1.0, 1.0)
    return Fingerprint(
        modality=modality.upper(), shapes_yx=tuple(tuple(int(v) for v in im.shape[1:]) for im in images),
        spacing_yx=spacing, annotated=tuple(len(a) for a in annotated),
        widths={v: float(np.percentile(w, 10)) for v, w in widths.items() if w},
        fractions={v: float(np.median(f)) for v, f in fractions.items()},
        extents={v: float(np.percentile(e, 90)) for v, e in extents.items() if e},
        intensity=(float(lo), float(hi), float(values.mean()), float(values.std())))


@dataclass(frozen=True)
class TrainingPlan:
    """Every setting of one training run, with the reasons and the user's overrides."""

    model: UNetConfig
    working_size: int | None  # longer side the model works at; None = native
    train: TrainConfig
    fingerprint: Fingerprint
    overridden: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    fine_tune: bool = False
    axis: int = 0  # the planes trained on (AXIS_NAMES)

    @property
    def few_annotations(self) -> bool:
        return self.train.holdout_min > self.fingerprint.annotated_total

    @property
    def selection(self) -> str:
        return "the " + selection(not self.few_annotations, self.train.ema is not None)

    def with_step_seconds(self, seconds: float) -> TrainingPlan:
        """Steps per epoch from a measured step time (unless the user set them); elastic deformation off when
        the budget affords fewer than ``ELASTIC_MIN_STEPS`` steps (unless the user turned it on); the warm-up
        at most ``WARMUP_SHARE`` of the budgeted steps, so a short run spends its steps near the peak rate."""
        if not (seconds > 0 and math.isfinite(seconds)):
            return self
        plan = self
        if "steps_per_epoch" not in self.overridden:
            steps = int(np.clip(round(TARGET_EPOCH_S / seconds), 5, 250))
            plan = replace(plan, train=replace(plan.train, steps_per_epoch=steps),
                           reasons=plan.reasons + (f"{steps} steps per epoch: {seconds:.2f} s per step measured, "
                                                   f"~{TARGET_EPOCH_S:g} s epochs",))
        t = plan.train
        budget = t.minutes * 60 / seconds if t.minutes else t.epochs * t.steps_per_epoch
        if t.minutes and t.epochs * t.steps_per_epoch < budget:
            budget = t.epochs * t.steps_per_epoch
        if t.elastic and "elastic" not in self.overridden and budget < ELASTIC_MIN_STEPS:
            plan = replace(plan, train=replace(t, elastic=False),
                           reasons=plan.reasons + (f"no elastic deformation: the budget affords ~{budget:.0f} steps "
                                                   f"(< {ELASTIC_MIN_STEPS}), too few for it to pay",))
        warmup = max(MIN_WARMUP, round(budget * WARMUP_SHARE))
        if warmup < plan.train.warmup_steps:
            plan = replace(plan, train=replace(plan.train, warmup_steps=warmup),
                           reasons=plan.reasons + (f"warm-up {warmup} steps: {WARMUP_SHARE:.0%} of the ~{budget:.0f} "
                                                   f"steps the budget affords",))
        return plan

    def to_json(self) -> dict:
        return {"model": self.model.to_json(), "working_size": self.working_size, "train": self.train.to_json(),
                "fingerprint": self.fingerprint.to_json(), "overridden": list(self.overridden),
                "reasons": list(self.reasons), "fine_tune": self.fine_tune, "selection": self.selection}

    def summary(self) -> str:
        """One paragraph for the CLI and the panel."""
        t = self.train
        size = f"{self.working_size} px" if self.working_size else "native"
        over = f"; set by you: {', '.join(k.replace('_', ' ') for k in self.overridden)}" if self.overridden else ""
        planes = f"{AXIS_NAMES[self.axis]} planes; " if self.axis else ""
        return (f"{planes}U-Net width {self.model.base}, depth {self.model.depth}; working size {size}; patch "
                f"{t.patch[0]} x {t.patch[1]}, batch {t.batch_size}, {t.steps_per_epoch} steps per epoch; learning "
                f"rate {t.learning_rate:g}{' (fine-tuning)' if self.fine_tune else ''}; model: {self.selection}{over}")


def choose_axis(labels: list[np.ndarray]) -> tuple[int, str]:
    """The axis to slice the volumes along for training: axial (0) when every annotated voxel lies in a
    (nearly) completely annotated axial slice, the usual case and the acquisition plane of a series; else
    the axis whose planes annotated to at least ``PLANE_COVERAGE`` hold the most annotated voxels (coronal
    or sagittal planes reviewed in those views: the axial slices they cross are annotated along one line
    only). Returns the axis and the reason."""
    held, total = np.zeros(3), 0
    for lab in labels:
        annotated = np.asarray(lab) != UNANNOTATED
        release(lab)
        total += int(annotated.sum())
        for axis in range(3):
            per_plane = annotated.sum(axis=tuple(a for a in range(3) if a != axis))
            held[axis] += per_plane[per_plane >= PLANE_COVERAGE * (annotated.size // annotated.shape[axis])].sum()
    if held[0] >= total:
        return 0, ""
    axis = int(np.argmax(held)) if held.max() > held[0] else 0
    if axis == 0:
        return 0, ""
    return axis, (f"{AXIS_NAMES[axis]} planes: most of the annotation lies in {AXIS_NAMES[axis]} planes "
                  f"({held[axis]:.0f} annotated voxels, {held[0]:.0f} in axial slices)")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_training(fp: Fingerprint, device: str = "cpu", minutes: float | None = DEFAULT_MINUTES_APP,
                  overrides: dict | None = None, init: tuple[UNetConfig, int | None] | None = None,
                  classes: int | None = None) -> TrainingPlan:
    """The full configuration of a run on ``device`` (``"cpu"``, ``"cuda"`` or ``"mps"``) for data ``fp``.

    ``overrides``: the user's settings (keys in :data:`OVERRIDES`; ``None`` values are ignored);
    ``init``: ``(architecture, working size)`` of the model to fine-tune, which are then kept;
    ``classes``: background + labels (default: background + the labels found in the data).
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(overrides) - set(OVERRIDES)
    if unknown:
        raise UnetguiError(f"unknown training settings: {sorted(unknown)}")
    named = tuple(k for k in overrides if k not in ("seed", "threads") and overrides[k] != "auto")
    explicit = set(overrides)
    if overrides.get("preset", "auto") != "auto":
        name = overrides.pop("preset")
        if name not in PRESETS:
            raise UnetguiError(f"unknown model size {name!r}; use one of auto, {', '.join(PRESETS)}")
        overrides = {**PRESETS[name], **overrides}
    overrides.pop("preset", None)
    profile = PROFILES.get(device, PROFILES["cpu"])
    classes = init[0].classes if init else (classes or 1 + max(len(fp.widths), 1))
    reasons: list[str] = []
    working = _working_size(fp, profile, overrides, "working_size" in explicit, init, reasons)
    h, w = fp.shape_yx
    f = (working / max(h, w)) if working else 1.0
    depth, patch = _depth_and_patch(fp, profile, overrides, (max(1, round(h * f)), max(1, round(w * f))), f, init, reasons)
    model = init[0] if init is not None else UNetConfig(
        classes=classes, depth=depth, base=overrides.get("base", profile.base), context=overrides.get("context", 0),
        kernel=overrides.get("kernel", 3))
    batch = overrides.get("batch_size") or int(np.clip(profile.batch_pixels // (patch[0] * patch[1]), 2, profile.max_batch))
    fine = init is not None
    minutes = overrides.get("minutes", minutes)
    if fp.annotated_total < FEW_SLICES:
        reasons.append(f"{fp.annotated_total} annotated slice(s) (< {FEW_SLICES}): all train, the model is the "
                       f"moving average of the weights at the end")
    fg_fraction = overrides.get("foreground_fraction", SMALL_FOREGROUND_FRACTION if fp.small_structure else FOREGROUND_FRACTION)
    rate = FINE_TUNE_RATE if fine else (LEARNING_RATE_SMALL if fp.small_structure else LEARNING_RATE)
    if fp.small_structure:
        said = [f"{fg_fraction:.0%} of the patches centred on it"] if "foreground_fraction" not in overrides else []
        if not fine and "learning_rate" not in overrides:
            said.append(f"learning rate {rate:g}")
        if said:
            reasons.append(f"small structure ({fp.smallest_share:.2%} of an annotated slice): {', '.join(said)}")
    if overrides.get("border_weight"):
        reasons.append(f"border weight map (w0 = {overrides['border_weight']:g}): pixels between touching objects "
                       f"weigh more in the loss")
    train = TrainConfig(
        epochs=overrides.get("epochs") or (100_000 if minutes else 200), minutes=minutes,
        steps_per_epoch=overrides.get("steps_per_epoch", 50), batch_size=batch, patch=patch,
        learning_rate=overrides.get("learning_rate", rate),
        weight_decay=overrides.get("weight_decay", 1e-4), warmup_steps=10 if fine else 30,
        schedule=overrides.get("schedule", "poly"), augment=overrides.get("augment", True),
        seed=overrides.get("seed", 0), threads=overrides.get("threads"), device=device, holdout_min=FEW_SLICES,
        ema=overrides.get("ema", EMA_DECAY) or None, elastic=overrides.get("elastic", ELASTIC),
        border_weight=overrides.get("border_weight", BORDER_WEIGHT) or None,
        loader_workers=overrides.get("workers", LOADER_WORKERS.get(device, 0)),
        dice_weight=overrides.get("dice_weight", 1.0), augment_strength=overrides.get("augment_strength", 1.0),
        foreground_fraction=fg_fraction, foreground_weight=overrides.get("foreground_weight", 1.0),
        patience_minutes=PATIENCE_SHARE * minutes if minutes else None)
    return TrainingPlan(model, working, train, fp, named, tuple(reasons), fine)


def _working_size(fp: Fingerprint, profile: DeviceProfile, overrides: dict, by_hand: bool,
                  init: tuple[UNetConfig, int | None] | None, reasons: list[str]) -> int | None:
    """Longer side the model works at (None: native); see the module docstring."""
    h, w = fp.shape_yx
    if init is not None:
        return init[1]
    if "working_size" in overrides:
        working = overrides["working_size"] or None
        # a preset's working size never enlarges a small image; one given by hand may
        return None if working is not None and working >= max(h, w) and not by_hand else working
    if max(h, w) <= profile.max_side:
        reasons.append(f"working size native: slices {h} x {w} fit the {profile.kind.upper()} cap of {profile.max_side} px")
        return None
    scale = profile.max_side / max(h, w)
    if fp.thinnest * scale < MIN_STRUCTURE_PX:
        scale = min(1.0, MIN_STRUCTURE_PX / fp.thinnest)
    # shrinking by less than a quarter saves little compute and blurs: keep the native grid then
    working = None if scale > 0.75 else _round_up(int(round(max(h, w) * scale)), 8)
    reasons.append(f"working size {working or 'native'}: slices {h} x {w}, thinnest structure {fp.thinnest:.1f} px")
    return working


def _depth_and_patch(fp: Fingerprint, profile: DeviceProfile, overrides: dict, shape: tuple[int, int], scale: float,
                     init: tuple[UNetConfig, int | None] | None, reasons: list[str]) -> tuple[int, tuple[int, int]]:
    """Network depth and patch ``(py, px)`` for working-size slices of ``shape``."""
    depth = init[0].depth if init is not None else overrides.get("depth")
    if "patch" in overrides:
        p = overrides["patch"]
        patch = (p, p) if isinstance(p, int) else tuple(p)
        return depth or _deepest(patch, profile.max_depth), patch
    cap = profile.max_patch
    if fp.extents:
        least = MIN_PATCH_SMALL if fp.small_structure else MIN_PATCH
        cap = int(min(cap, max(least, CONTEXT_FACTOR * max(fp.extents.values()) * scale)))
    trial = depth or profile.max_depth
    while True:
        m = 2**trial
        # a side shorter than 16 px (a coronal plane of a thin slab) is padded: 16 is the least patch side
        patch = (min(_round_up(max(shape[0], 16), m), _round_up(cap, m)), min(_round_up(max(shape[1], 16), m), _round_up(cap, m)))
        if depth is not None or trial == 1 or min(patch) // m >= MIN_BOTTLENECK_PX:
            break
        trial -= 1
    whole = patch[0] >= shape[0] and patch[1] >= shape[1]
    reasons.append(f"patch {patch[0]} x {patch[1]}{' (the whole slice)' if whole else ''}, depth {trial}: "
                   f"bottleneck {patch[0] >> trial} x {patch[1] >> trial} px")
    return trial, patch


def _deepest(patch: tuple[int, int], max_depth: int) -> int:
    for depth in range(max_depth, 0, -1):
        if min(patch) % 2**depth == 0 and min(patch) >> depth >= MIN_BOTTLENECK_PX:
            return depth
    return 1


def panel_defaults(fine_tune: bool) -> dict:
    """The settings the training panel opens with (the planner's: tested to agree)."""
    return {"minutes": DEFAULT_MINUTES_APP, "learning_rate": FINE_TUNE_RATE if fine_tune else LEARNING_RATE}
