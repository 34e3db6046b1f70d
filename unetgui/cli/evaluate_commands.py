"""``unetgui evaluate``: argument parsing, reading and printing around tasks/evaluate.py. Three forms:

* ``--prediction P --truth T [--image I]``: two label files;
* ``--model M --image I --truth T``: the model on the slices the truth annotates (the app's Evaluate);
* ``--model M --dataset D [--split test]``: the model on a data set's cases, one row per case and label.
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np

from unetgui.cli.common import add_device, add_series, command, show, warn
from unetgui.cli.outputs import check_writable, write_json
from unetgui.cli.progress import ProgressLine
from unetgui.core import atomic, csvcell
from unetgui.core.errors import UnetguiError
from unetgui.core.progress import run_to_end
from unetgui.core.volume import LabelMap, LabelTable, Volume, annotated_slices
from unetgui.formats import nifti, png
from unetgui.formats.inputs import is_nifti, open_image, open_labels


def add_parsers(sub: argparse._SubParsersAction) -> None:
    evaluate = command(sub, "evaluate", "Dice, IoU, HD95 and volumes of a prediction against the truth, of a model on "
                       "an image's annotated slices, or of a model on a data set's test cases", [
                           "unetgui evaluate --prediction pred.nii.gz --truth truth.nii.gz --json metrics.json",
                           "unetgui evaluate --model liver.unetgui --image ct/ --truth annotation.nii.gz",
                           "unetgui evaluate --model liver.unetgui --dataset Task03_Liver/ --csv cases.csv"])
    evaluate.add_argument("--prediction", help="NIfTI label volume or folder of label PNGs; with --image also "
                          "NRRD, a Slicer .seg.nrrd or a DICOM-SEG")
    evaluate.add_argument("--truth", help="NIfTI label volume or folder of masks (255 = not annotated); with --image "
                          "also NRRD, a Slicer .seg.nrrd or a DICOM-SEG")
    evaluate.add_argument("--image", help="the image the label files belong to (DICOM folder, NIfTI, NRRD): they "
                          "are read onto its grid, in any label format, e.g. a DICOM-SEG against a .seg.nrrd; with "
                          "--model: the image to segment")
    add_series(evaluate, "--image")
    evaluate.add_argument("--model", help="with --dataset: the model to segment the cases with; with --image and "
                          "--truth: the model to segment the truth's annotated slices with (sparse labels: the slices "
                          "without 255; dense: the slices with a label)")
    evaluate.add_argument("--dataset", help="with --model: a data set folder or manifest (as for train --dataset)")
    evaluate.add_argument("--split", default="test", choices=["test", "val", "train", "all"],
                          help="with --dataset: the cases of this split, as stored in the model (default test)")
    evaluate.add_argument("--csv", help="also write one row per case (or slice set) and label to this CSV file")
    add_device(evaluate)
    evaluate.add_argument("--json", help="also write the metrics to this JSON file")
    evaluate.set_defaults(run=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    for flag in ("csv", "json"):
        if getattr(args, flag):
            check_writable(getattr(args, flag), f"--{flag}")
    if args.series and not args.image:
        raise UnetguiError("--series picks the series of --image: give --image too")
    if args.model and args.dataset:
        if args.prediction or args.truth or args.image:
            raise UnetguiError("give --model with --dataset, or --model with --image and --truth")
        return _evaluate_dataset(args)
    if args.model:
        if args.prediction or not (args.image and args.truth):
            raise UnetguiError("give --model with --image and --truth (or with --dataset)")
        return _evaluate_model(args)
    if args.dataset:
        raise UnetguiError("give --model with --dataset")
    if not (args.prediction and args.truth):
        raise UnetguiError("give --prediction and --truth (or --model with --dataset, or --model with --image and --truth)")
    return _evaluate_files(args)


HEADER = f"{'case':<24} {'set':<10} {'label':<12} {'Dice':>7} {'IoU':>7} {'HD95 mm':>9} {'pred mL':>10} {'truth mL':>10}"


def _line(row) -> str:
    hd = f"{row.hd95_mm:9.2f}" if math.isfinite(row.hd95_mm) else f"{'n/a':>9}"
    number = lambda v, w: f"{v:{w}.4f}" if math.isfinite(v) else f"{'n/a':>{w}}"  # noqa: E731
    return (f"{row.case[:24]:<24} {row.set[:10]:<10} {row.name[:12]:<12} {number(row.dice, 7)} {number(row.iou, 7)} {hd} "
            f"{row.volume_pred_ml:10.3f} {row.volume_truth_ml:10.3f}")


def _write_csv(path: str, rows: list) -> None:
    from unetgui.tasks.evaluate import COLUMNS

    atomic.write_bytes(path, csvcell.table_text(COLUMNS, [r.to_json() for r in rows]).encode("utf-8"))


def _finish(args: argparse.Namespace, rows: list, extra: dict | None = None) -> int:
    if args.csv:
        _write_csv(args.csv, rows)
    if args.json:
        write_json(args.json, {**(extra or {}), "metrics": [r.to_json() for r in rows]})
    return 0


def _evaluate_model(args: argparse.Namespace) -> int:
    """The model on the slices the truth annotates, measured as the app's Evaluate measures its test slices."""
    from unetgui.tasks import models
    from unetgui.tasks.evaluate import EvaluateRequest, evaluate_model

    request = EvaluateRequest(args.device)
    checkpoint = models.load(args.model)
    image = open_image(args.image, args.series, progress=ProgressLine("loading"))
    truth, notes = open_labels(args.truth, image, checkpoint.labels)
    for note in notes:
        warn([note])
    slices = [int(z) for z in np.flatnonzero(annotated_slices(truth.labels))]
    if not slices:
        raise UnetguiError(f"{args.truth} annotates no slice")
    rows = evaluate_model(request, checkpoint, image.volume, truth.labels, {"annotated": slices},
                          progress=ProgressLine("segmenting"), case=os.path.basename(os.path.normpath(args.image)))
    print(HEADER)
    for row in rows:
        show(_line(row))
    print(f"{len(slices)} annotated slice(s) of {image.volume.shape[0]}")
    return _finish(args, rows, {"slices": slices})


def _evaluate_dataset(args: argparse.Namespace) -> int:
    """One row per case and label of the split, then the mean and median per label."""
    from unetgui.tasks import models
    from unetgui.tasks.evaluate import EvaluateRequest, evaluate_dataset

    request = EvaluateRequest(args.device)
    checkpoint = models.load(args.model)
    rows = []
    print(HEADER)

    def each(row) -> None:
        rows.append(row)
        show(_line(row))

    summary, cases = run_to_end(evaluate_dataset(request, checkpoint, args.dataset, args.split,
                                                 progress=ProgressLine("evaluating")), each)
    for row in summary:
        show(_line(row))
    print(f"{cases} case(s) of the {args.split} split")
    if args.json:
        write_json(args.json, {"split": args.split, "cases": [r.to_json() for r in rows],
                               "summary": [r.to_json() for r in summary]})
    if args.csv:
        _write_csv(args.csv, rows + summary)
    return 0


def _grid_of(labels: LabelMap) -> Volume:
    """A zero-cost stand-in volume with the labels' grid, to map another label file onto it."""
    return Volume(np.broadcast_to(np.uint8(0), labels.shape), labels.affine)


def _label_mismatches(truth: LabelTable, prediction: LabelTable) -> list[str]:
    """Values that the two files name differently (and do not code alike): files from different tools may
    number their structures differently, and the metrics compare by value. A file that does not name its
    values ("Label 3", a plain label map) says nothing either way."""
    notes = []
    for label in truth:
        other = prediction.get(label.value)
        if other is None or f"Label {label.value}" in (label.name, other.name):
            continue
        if " ".join(label.name.split()).casefold() == " ".join(other.name.split()).casefold():
            continue
        kind, other_kind = label.code("type"), other.code("type")
        if kind is not None and other_kind is not None and kind[:2] == other_kind[:2]:
            continue  # the same structure by its code, under other names
        notes.append(f"label {label.value} is {label.name!r} in the truth but {other.name!r} in the prediction: "
                     "labels are compared by value")
    return notes


def _evaluate_files(args: argparse.Namespace) -> int:
    from unetgui.tasks.evaluate import compare

    if args.image:
        image = open_image(args.image, args.series)
        (truth, truth_notes), (pred, pred_notes) = (open_labels(path, image) for path in (args.truth, args.prediction))
        warn([*truth_notes, *pred_notes])  # e.g. a broken label table beside a file: not used, and said
        spacing = image.volume.spacing
        truth_labels, pred_labels, tables = truth.labels, pred.labels, (truth.table, pred.table)
    elif is_nifti(args.truth):
        truth = nifti.read_labels(args.truth)
        if not is_nifti(args.prediction):
            raise UnetguiError("compare a NIfTI truth with a NIfTI prediction, or give --image to read both onto "
                               "the image's grid in any label format")
        pred = nifti.read_labels(args.prediction, _grid_of(truth))
        spacing = _grid_of(truth).spacing
        truth_labels, pred_labels, tables = truth.labels, pred.labels, (truth.table, pred.table)
    else:
        if not os.path.isdir(args.truth):
            raise UnetguiError(f"{args.truth}: give --image for this format (NRRD, .seg.nrrd and DICOM-SEG labels "
                               "are read onto an image's grid)")
        names = [os.path.basename(p) for p in png.list_images(args.truth)]
        if not names:
            raise UnetguiError(f"{args.truth}: no masks found")
        truth_labels = png.read_mask_folder(args.truth, names)
        pred_labels = png.read_mask_folder(args.prediction, names)
        spacing, tables = (1.0, 1.0, 1.0), (LabelTable(), LabelTable())  # masks name no labels
    for note in _label_mismatches(*tables):
        warn([note], "note")
    if pred_labels.shape != truth_labels.shape:
        raise UnetguiError(f"the prediction {pred_labels.shape} and the truth {truth_labels.shape} differ in size")
    rows = compare(pred_labels, truth_labels, spacing, tables[0])
    print(f"{'label':>5} {'Dice':>7} {'IoU':>7} {'HD95 mm':>9} {'pred mL':>10} {'truth mL':>10}")
    for m in rows:
        hd = f"{m.hd95_mm:9.2f}" if math.isfinite(m.hd95_mm) else f"{'n/a':>9}"
        print(f"{m.label:5d} {m.dice:7.4f} {m.iou:7.4f} {hd} {m.volume_pred_ml:10.3f} {m.volume_truth_ml:10.3f}")
    return _finish(args, rows, {"spacing_mm": list(spacing)})
