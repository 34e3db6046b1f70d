"""Assemble a training run from annotated volumes: fingerprint -> plan -> preprocessing -> cases -> measured
step time -> :class:`~unetgui.engine.training.Trainer`. The one place a run is put together: the CLI's
``train``, the app's training and ``tune`` all call :func:`build_trainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from unetgui.core.errors import UnetguiError
from unetgui.core.volume import LabelTable
from unetgui.engine import cache, distributed
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.data import Case, prepare_case, refs_of_cases, slice_folds, with_labels
from unetgui.engine.device import pick_device
from unetgui.engine.planner import AXIS_NAMES, TrainingPlan, choose_axis, fingerprint, plan_training
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.training import Trainer, measure_step_seconds


@dataclass(frozen=True)
class AnnotatedVolume:
    """One image with its (sparse) labels: ``voxels`` ``(z, y, x)`` raw values (HU for CT), ``labels`` label
    values with 255 = not annotated, ``spacing_yx`` in-plane pixel size in mm, ``spacing_z`` the slice
    distance (None: unknown)."""

    name: str
    voxels: np.ndarray
    labels: np.ndarray
    modality: str = ""
    spacing_yx: tuple[float, float] = (1.0, 1.0)
    spacing_z: float | None = None

    def along(self, axis: int) -> AnnotatedVolume:
        """This volume sliced along ``axis`` (0 axial: itself; 1 coronal, 2 sagittal: a copy with that axis first)."""
        if axis == 0:
            return self
        sz = self.spacing_z or self.spacing_yx[0]
        spacing = (sz, self.spacing_yx[1]) if axis == 1 else (sz, self.spacing_yx[0])
        return AnnotatedVolume(self.name, np.ascontiguousarray(np.moveaxis(self.voxels, axis, 0)),
                               np.ascontiguousarray(np.moveaxis(self.labels, axis, 0)), self.modality, spacing,
                               self.spacing_yx[0] if axis == 1 else self.spacing_yx[1])


def plan_run(volumes: list[AnnotatedVolume], table: LabelTable, device: str = "auto", minutes: float | None = None,
             overrides: dict | None = None, init: Checkpoint | None = None, data_set: bool = False,
             axis: tuple[int, str] | None = None) -> TrainingPlan:
    """The plan for training on ``volumes`` (no step timing yet), in the planes of the chosen axis (the
    starting model's, the user's ``axis`` override, else :func:`~unetgui.engine.planner.choose_axis`; a
    ``data_set``'s volumes are annotated whole and train axially unless the user says otherwise).
    ``axis``: ``(axis, reason)`` already chosen, with ``volumes`` already along it (:func:`build_trainer`)."""
    dev = pick_device(device)
    if axis is None:
        axis = _axis(volumes, overrides, init, data_set)
        volumes = [v.along(axis[0]) for v in volumes]
    axis, reason = axis
    fp = fingerprint([v.voxels for v in volumes], [v.labels for v in volumes], volumes[0].modality,
                     [v.spacing_yx for v in volumes])

    base = (init.config, init.preprocessing.working_size) if init is not None else None
    plan = plan_training(fp, dev.type, minutes, overrides, base, classes=len(table) + 1)
    return replace(plan, axis=axis, reasons=plan.reasons + ((reason,) if reason else ()))


def _axis(volumes: list[AnnotatedVolume], overrides: dict | None, init: Checkpoint | None,
          data_set: bool) -> tuple[int, str]:
    given = (overrides or {}).get("axis")
    if init is not None:
        if given not in (None, "auto", init.preprocessing.axis, AXIS_NAMES[init.preprocessing.axis]):
            raise UnetguiError(f"the model to fine-tune works on {AXIS_NAMES[init.preprocessing.axis]} planes")
        axis = init.preprocessing.axis
        return axis, (f"{AXIS_NAMES[axis]} planes: the model's" if axis else "")
    if given not in (None, "auto"):
        axis = AXIS_NAMES.index(given) if given in AXIS_NAMES else given
        if axis not in (0, 1, 2):
            raise UnetguiError(f"axis must be one of {', '.join(AXIS_NAMES)} (or 0, 1, 2), got {given!r}")
        return axis, ""
    return (0, "") if data_set else choose_axis([v.labels for v in volumes])


def prepare_cases(volumes: list[AnnotatedVolume], plan: TrainingPlan, init: Checkpoint | None = None,
                  cache_root: str | None = None) -> tuple[Preprocessing, list[Case]]:
    """The run's preprocessing (the starting model's, or fitted to the training foreground) and cases.

    ``cache_root``: volumes memory-mapped from the cache's native entries (engine/cache.py) become cases
    memory-mapped from its preprocessed entries, written once and reused; nothing holds a whole volume."""
    if init is not None:
        pre = init.preprocessing
    else:
        pre = replace(Preprocessing.for_modality(volumes[0].modality, plan.working_size).fit_statistics(
            [v.voxels for v in volumes], [v.labels for v in volumes]), axis=plan.axis)
    if cache_root is None:
        return pre, [prepare_case(v.name, v.voxels, v.labels, pre) for v in volumes]
    cases, app = [], False
    for v in volumes:
        folder = cache.native_folder(v.voxels)
        if folder is None:  # an image in memory (no project): normalised in memory as without a cache
            cases.append(prepare_case(v.name, v.voxels, v.labels, pre))
            continue
        if getattr(v.labels, "filename", None) is None:  # the app: labels in memory, the image on disk
            if v.voxels.shape != v.labels.shape:
                raise UnetguiError(f"{v.name}: image {v.voxels.shape} and labels {v.labels.shape} differ in shape")
            image = cache.preprocessed_image(cache_root, v.voxels, pre)[0]
            cases.append(with_labels(Case(v.name, image, np.zeros((0, 0, 0), np.uint8), ()), v.labels))
            app = True
            continue
        entry = cache.NativeEntry(v.name, folder, v.voxels, v.labels, v.modality, v.spacing_yx)
        # under torchrun rank 0 writes the entry and the others then read it
        cases.append(distributed.rank_zero_first(lambda entry=entry: cache.preprocessed(cache_root, entry, pre))[0])
    if app:
        cache.prune(cache_root, pre)
    return pre, cases


def build_trainer(volumes: list[AnnotatedVolume], table: LabelTable, device: str = "auto", minutes: float | None = None,
                  overrides: dict | None = None, init: Checkpoint | None = None, measure: bool = True,
                  val_cases: list[int] | None = None, cache_root: str | None = None,
                  fold: tuple[int, int] | None = None) -> Trainer:
    """A ready :class:`Trainer` for ``volumes``; ``trainer.plan`` holds the plan (recorded in the model file).

    ``measure``: time a few steps on the device to size the epochs (about a second or two on a CPU).
    ``val_cases``: the volumes that validate (a data set's split by case); default: the run's own rule.
    ``cache_root``: see :func:`prepare_cases`.
    ``fold``: ``(i, k)``: train and validate on fold ``i`` of ``k`` folds over the annotated slices
    (:func:`~unetgui.engine.data.slice_folds`; a search's cross-validation when too few slices are annotated).
    """
    chosen = _axis(volumes, overrides, init, data_set=val_cases is not None)
    volumes = [v.along(chosen[0]) for v in volumes]  # coronal or sagittal planes: a copy in memory, made once
    plan = plan_run(volumes, table, device, minutes, overrides, init, axis=chosen)
    pre, cases = prepare_cases(volumes, plan, init, cache_root)
    if measure:  # the ranks of a torchrun agree on one step time, so that their epochs have the same length
        plan = plan.with_step_seconds(distributed.agree_max([measure_step_seconds(plan.model, plan.train)])[0])
    refs = None
    if val_cases is not None:
        refs = refs_of_cases(cases, [i for i in range(len(cases)) if i not in set(val_cases)], list(val_cases))
    elif fold is not None:
        refs = slice_folds(cases, fold[1])[fold[0]]
    trainer = Trainer(cases, table, pre, plan.train, plan.model, init, split_refs=refs)
    trainer.plan = plan
    trainer.spacings = [working_spacing(v, pre) for v in volumes]
    return trainer


def working_spacing(volume: AnnotatedVolume, pre: Preprocessing) -> tuple[float, float, float] | None:
    """``(z, y, x)`` mm of ``volume``'s grid at the working size (None when its slice distance is unknown)."""
    if not volume.spacing_z:
        return None
    h, w = volume.voxels.shape[1:]
    wh, ww = pre.working_shape((h, w))
    return float(volume.spacing_z), volume.spacing_yx[0] * h / wh, volume.spacing_yx[1] * w / ww
