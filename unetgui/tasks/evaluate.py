"""Measure a model, or a prediction, against the truth: the one evaluation of the app's Evaluate,
``unetgui evaluate`` (files, a model on an image's annotated slices, a model on a data set's cases) and the
benchmarks.

The conventions, decided here and in engine/metrics.py only:

* voxels the truth leaves unannotated (255) count nowhere;
* the whole volume is measured in 3-D; any other slice set (validation or test slices, the slices a label
  file annotates) gets HD95 per slice in 2-D (``engine.metrics.evaluate_set``);
* HD95 is MONAI's: the larger of the two directed 95th percentiles of the surface distances, in mm;
* the model's post-processing runs when the segmented slices cover the whole volume (tasks/segment.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from unetgui.core.errors import UnetguiError
from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core.volume import LabelTable, Volume
from unetgui.engine.config import check_device
from unetgui.tasks.segment import SegmentRequest, collect

#: the metrics of a row, in the order tables show them
METRICS = ("dice", "iou", "hd95_mm", "volume_pred_ml", "volume_truth_ml")
#: the columns of every evaluation CSV (app and command line)
COLUMNS = ["case", "set", "slices", "label", "name", *METRICS]


@dataclass(frozen=True)
class EvaluationRow:
    """The metrics of one label on one slice set (``set``: "validation", "test", "annotated", a data set's
    split) of one image (``case``: its name; "" for the open image), or a summary (``case`` "mean"/"median")."""

    set: str
    slices: int
    label: int
    name: str
    dice: float
    iou: float
    hd95_mm: float  # inf when undefined (one of prediction and truth empty)
    volume_pred_ml: float
    volume_truth_ml: float
    case: str = ""

    def to_json(self) -> dict:
        finite = math.isfinite(self.hd95_mm)
        return {"case": self.case, "set": self.set, "slices": self.slices, "label": self.label, "name": self.name,
                **{k: getattr(self, k) if math.isfinite(getattr(self, k)) else None for k in METRICS},
                "hd95_defined": finite}


def _name(table: LabelTable, value: int) -> str:
    label = table.get(value)
    return label.name if label is not None else f"Label {value}"


def compare(prediction: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float], table: LabelTable,
            slices=None, set_name: str = "all", case: str = "", labels: list[int] | None = None) -> list[EvaluationRow]:
    """Rows of ``prediction`` against ``truth`` (label values ``(z, y, x)``, same grid) on ``slices`` (None:
    all), one per label (``labels``; default: every value present)."""
    from unetgui.engine.metrics import evaluate_set

    if prediction.shape != truth.shape:
        raise UnetguiError(f"the prediction {prediction.shape} and the truth {truth.shape} differ in size")
    count = prediction.shape[0] if slices is None else len(set(slices))
    return [EvaluationRow(set_name, count, m.label, _name(table, m.label), m.dice, m.iou, m.hd95_mm, m.volume_pred_ml,
                          m.volume_truth_ml, case)
            for m in evaluate_set(prediction, truth, tuple(spacing), slices, labels)]


@dataclass(frozen=True)
class EvaluateRequest:
    device: str = "auto"

    def __post_init__(self) -> None:
        check_device(self.device)


def evaluate_model(request: EvaluateRequest, checkpoint, volume: Volume, truth: np.ndarray,
                   sets: Mapping[str, list[int]], cancel: CancelToken | None = None,
                   progress: ProgressFn | None = None, case: str = "") -> list[EvaluationRow]:
    """Segment the slices of ``sets`` (name -> slices of ``volume``) with ``checkpoint`` (the document is
    not changed) and compare each set with ``truth`` for the model's labels. Each set is segmented on its own,
    so that its numbers do not depend on the other sets (a set of every slice gets the model's
    post-processing, tasks/segment.py)."""
    sets = {name: sorted({int(z) for z in slices}) for name, slices in sets.items() if len(slices)}
    if not sets:
        raise UnetguiError("no slices to evaluate on")
    if truth.shape != volume.shape:
        raise UnetguiError(f"the truth {truth.shape} is not on the image's grid {volume.shape}")
    values = list(checkpoint.labels.values)
    rows = []
    for name, slices in sets.items():
        segmentation = collect(SegmentRequest(request.device, tuple(slices), compile=False), checkpoint, volume, cancel,
                               progress)
        rows += compare(segmentation.labels, truth, volume.spacing, checkpoint.labels, slices, name, case, values)
    return rows


def evaluate_dataset(request: EvaluateRequest, checkpoint, path: str, split: str = "test",
                     cancel: CancelToken | None = None, progress: ProgressFn | None = None) -> Iterator[EvaluationRow]:
    """Segment every case of ``split`` ("test", "val", "train" as stored in the model by ``train --dataset``, or
    "all") of the data set at ``path`` and yield its rows, case by case; returns (the summary rows: mean and
    median per label over the cases, the number of cases)."""
    from unetgui.formats.dataset import read_dataset
    from unetgui.formats.inputs import open_image, open_labels

    dataset = read_dataset(path)
    stored = checkpoint.info.get("dataset") or {}
    if split == "all":
        ids = [c.id for c in dataset.cases]
    elif split in stored:
        ids = list(stored[split])
    else:
        raise UnetguiError(f"the model was not trained with --dataset, so it has no {split} split: use --split all")
    missing = [i for i in ids if i not in {c.id for c in dataset.cases}]
    if missing:
        raise UnetguiError(f"the model's {split} split names {len(missing)} case(s) this data set lacks "
                           f"(e.g. {missing[0]}): is it the data set the model was trained on?")
    if not ids:
        raise UnetguiError(f"the model's {split} split has no cases (train with --test-fraction above 0)")
    rows = []
    for k, case_id in enumerate(ids):
        check(cancel)
        report(progress, k, len(ids), case_id)
        case = dataset.find(case_id)
        image = open_image(case.image)
        truth, _ = open_labels(case.label, image, checkpoint.labels)
        segmentation = collect(SegmentRequest(request.device, compile=False), checkpoint, image.volume, cancel)
        truth_labels = dataset.unannotate(truth.labels)  # nnU-Net's "ignore" label counts in no metric, as in training
        for row in compare(segmentation.labels, truth_labels, image.volume.spacing, checkpoint.labels, None, split, case_id):
            rows.append(row)
            yield row
    report(progress, len(ids), len(ids), "")
    return summarise(rows), len(ids)


def summarise(rows: list[EvaluationRow]) -> list[EvaluationRow]:
    """Mean and median of each metric per label over ``rows`` (undefined values left out; none left: NaN)."""
    out = []
    for label in dict.fromkeys(r.label for r in rows):
        mine = [r for r in rows if r.label == label]
        for stat, fn in (("mean", np.mean), ("median", np.median)):
            values = {}
            for key in METRICS:
                finite = [getattr(r, key) for r in mine if math.isfinite(getattr(r, key))]
                values[key] = float(fn(finite)) if finite else math.nan
            out.append(EvaluationRow(mine[0].set, sum(r.slices for r in mine), label, mine[0].name, case=stat, **values))
    return out
