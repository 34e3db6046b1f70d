"""Assemble a training run from annotated volumes: fingerprint -> plan -> preprocessing -> cases -> measured
step time -> :class:`~unetgui.engine.training.Trainer`. The one place a run is put together: the CLI's
``train``, the app's training and ``tune`` all call :func:`build_trainer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unetgui.core.volume import LabelTable
from unetgui.engine.checkpoint import Checkpoint
from unetgui.engine.data import Case, prepare_case
from unetgui.engine.device import pick_device
from unetgui.engine.planner import TrainingPlan, fingerprint, plan_training
from unetgui.engine.preprocessing import Preprocessing
from unetgui.engine.training import Trainer, measure_step_seconds


@dataclass(frozen=True)
class AnnotatedVolume:
    """One image with its (sparse) labels: ``voxels`` ``(z, y, x)`` raw values (HU for CT), ``labels`` label
    values with 255 = not annotated, ``spacing_yx`` in-plane pixel size in mm."""

    name: str
    voxels: np.ndarray
    labels: np.ndarray
    modality: str = ""
    spacing_yx: tuple[float, float] = (1.0, 1.0)


def plan_run(volumes: list[AnnotatedVolume], table: LabelTable, device: str = "auto", minutes: float | None = None,
             overrides: dict | None = None, init: Checkpoint | None = None) -> TrainingPlan:
    """The plan for training on ``volumes`` (no step timing yet)."""
    dev = pick_device(device)
    fp = fingerprint([v.voxels for v in volumes], [v.labels for v in volumes], volumes[0].modality,
                     [v.spacing_yx for v in volumes])
    base = (init.config, init.preprocessing.working_size) if init is not None else None
    return plan_training(fp, dev.type, minutes, overrides, base, classes=len(table) + 1)


def prepare_cases(volumes: list[AnnotatedVolume], plan: TrainingPlan, init: Checkpoint | None = None) -> tuple[Preprocessing, list[Case]]:
    """The run's preprocessing (the starting model's, or fitted to the training foreground) and cases."""
    if init is not None:
        pre = init.preprocessing
    else:
        pre = Preprocessing.for_modality(volumes[0].modality, plan.working_size).fit_statistics(
            [v.voxels for v in volumes], [v.labels for v in volumes])
    return pre, [prepare_case(v.name, v.voxels, v.labels, pre) for v in volumes]


def build_trainer(volumes: list[AnnotatedVolume], table: LabelTable, device: str = "auto", minutes: float | None = None,
                  overrides: dict | None = None, init: Checkpoint | None = None, measure: bool = True) -> Trainer:
    """A ready :class:`Trainer` for ``volumes``; ``trainer.plan`` holds the plan (recorded in the model file).

    ``measure``: time a few steps on the device to size the epochs (about a second or two on a CPU).
    """
    plan = plan_run(volumes, table, device, minutes, overrides, init)
    pre, cases = prepare_cases(volumes, plan, init)
    if measure:
        plan = plan.with_step_seconds(measure_step_seconds(plan.model, plan.train))
    trainer = Trainer(cases, table, pre, plan.train, plan.model, init)
    trainer.plan = plan
    return trainer
