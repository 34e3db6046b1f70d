"""``unetgui predict`` and ``unetgui suggest``: argument parsing, output files and printing around
tasks/segment.py."""

from __future__ import annotations

import argparse
import os
from collections import Counter

from unetgui.cli.common import add_device, add_series, command, warn
from unetgui.cli.outputs import check_writable, write_json
from unetgui.cli.progress import ProgressLine
from unetgui.core.errors import UnetguiError
from unetgui.core.annotation import label_file_annotation
from unetgui.core.volume import LabelMap
from unetgui.formats import label_tables, nifti, nrrd, png
from unetgui.formats.dicom_seg import write_dicom_seg
from unetgui.formats.inputs import ImageInput, is_nifti, open_image, open_labels

IMAGE_HELP = "DICOM series folder, NIfTI or NRRD file (.nrrd, .nhdr) or folder of 2-D images"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    predict = command(sub, "predict", "segment an image with a trained model", [
        "unetgui predict --model liver.unetgui --input ct/ --output liver.nii.gz",
        "unetgui predict --model liver.unetgui --input ct/ --series 3 --output liver-seg.dcm --tta"])
    predict.add_argument("--model", required=True, help="model file (.unetgui)")
    predict.add_argument("--input", required=True, help=IMAGE_HELP)
    add_series(predict, "--input")
    predict.add_argument("--output", required=True,
                         help=".nii.gz (labels on the input grid, with their names as .itksnap.txt and .ctbl next to it), "
                              ".seg.nrrd (3D Slicer segmentation), .dcm (DICOM-SEG, DICOM input only) or a folder (PNGs)")
    add_device(predict)
    predict.add_argument("--tta", action="store_true", help="average over flipped copies (4x slower, smoother)")
    predict.add_argument("--annotation", help="the labels this image was annotated with (as for train --labels): "
                                               "where the model's post-processing says so, objects that do not reach "
                                               "the annotated structure are removed, as the app does")
    predict.set_defaults(run=_predict)
    suggest = command(sub, "suggest", "rank the slices to correct next by the model's uncertainty", [
        "unetgui suggest --model liver.unetgui --input ct/ --labels annotation.nii.gz --count 5",
        "unetgui suggest --model liver.unetgui --input ct/ --json ranking.json"])
    suggest.add_argument("--model", required=True, help="model file (.unetgui)")
    suggest.add_argument("--input", required=True, help=IMAGE_HELP)
    add_series(suggest, "--input")
    suggest.add_argument("--labels", help="the annotation so far (as for train --labels): its annotated slices count "
                         "as reviewed and are never suggested (sparse labels: slices without 255; dense: slices with "
                         "a label)")
    suggest.add_argument("--count", type=int, default=10, help="how many slices to list (default 10; 0: all)")
    add_device(suggest)
    suggest.add_argument("--tta", action="store_true", help="flip test-time augmentation (its disagreement "
                         "raises the uncertainty)")
    suggest.add_argument("--json", help="also write the ranking to this JSON file")
    suggest.set_defaults(run=_suggest)


def _predict(args: argparse.Namespace) -> int:
    from unetgui.tasks import models
    from unetgui.tasks.segment import SegmentRequest, collect

    out = args.output
    parent = os.path.dirname(os.path.abspath(out))
    if _output_kind(out) is None:
        raise UnetguiError(f"{out}: {_OUTPUTS}")
    if not os.path.isdir(parent):
        raise UnetguiError(f"{out}: its folder {parent} does not exist")
    request = SegmentRequest(args.device, tta=args.tta, compile=False)  # one volume: no time to compile
    checkpoint = models.load(args.model)
    image = open_image(args.input, args.series, progress=ProgressLine("loading"))
    if _output_kind(out) == "dicom-seg" and image.kind != "dicom":
        raise UnetguiError("a DICOM-SEG output needs a DICOM input")
    _png_names(image, out)  # a collision is found before the work, not after
    annotation = None
    if args.annotation:
        drawn, notes = open_labels(args.annotation, image, checkpoint.labels)
        warn(notes)
        annotation = drawn.labels
    segmentation = collect(request, checkpoint, image.volume, progress=ProgressLine("segmenting"), annotation=annotation)
    labels = LabelMap(segmentation.labels, image.volume.affine.copy(), checkpoint.labels)
    _write_prediction(labels, image, out)
    z, run = image.volume.shape[0], segmentation.result
    print(f"wrote {out}: {z} slice(s) in {run.seconds:.1f} s ({run.seconds / z * 1000:.0f} ms/slice, {run.device_name})")
    warn(run.notes, "note")
    return 0


def _suggest(args: argparse.Namespace) -> int:
    import numpy as np

    from unetgui.tasks import models
    from unetgui.tasks.segment import SegmentRequest, suggest

    if args.count < 0:
        raise UnetguiError("--count must be 0 (all) or more")
    if args.json:
        check_writable(args.json, "--json")
    checkpoint = models.load(args.model)
    image = open_image(args.input, args.series, progress=ProgressLine("loading"))
    reviewed = np.zeros(image.volume.shape[0], bool)
    if args.labels:
        labels, notes = open_labels(args.labels, image, checkpoint.labels)
        warn(notes)
        reviewed = label_file_annotation(labels.labels)[1]  # the slices the app counts as reviewed, opened
    picks, scores = suggest(SegmentRequest(args.device, tta=args.tta, compile=False), checkpoint, image.volume, reviewed,
                            args.count or None, progress=ProgressLine("segmenting"))
    print("rank\tslice\tnumber\tscore\tpriority   (slice: 0-based index along z; number: 1-based, as the app shows)")
    for rank, pick in enumerate(picks, start=1):
        print(f"{rank}\t{pick.slice}\t{pick.slice + 1}\t{pick.score:.1f}\t{pick.priority:.1f}")
    if args.json:
        write_json(args.json, {"reviewed": [int(z) for z in np.flatnonzero(reviewed)],
                               "suggestions": [{"rank": r, "slice": p.slice, "score": p.score, "priority": p.priority}
                                               for r, p in enumerate(picks, start=1)],
                               "scores": [None if not np.isfinite(v) else float(v) for v in scores]})
    return 0


_OUTPUTS = "the output must be .nii/.nii.gz, .seg.nrrd, .dcm or a folder"


def _output_kind(out: str) -> str | None:
    """What ``predict --output`` writes, told by the name: nifti, seg-nrrd, dicom-seg, png (a folder) or None."""
    lower = out.lower()
    if is_nifti(out):
        return "nifti"
    if lower.endswith(".seg.nrrd"):
        return "seg-nrrd"
    if lower.endswith(".dcm"):
        return "dicom-seg"
    return "png" if os.path.splitext(out)[1] == "" else None


def _write_prediction(labels: LabelMap, image: ImageInput, out: str) -> None:
    kind = _output_kind(out)
    if kind == "nifti":
        nifti.write_labels(labels, out)
        label_tables.write_tables_next_to(out, labels.table)  # names and colours for ITK-SNAP and Slicer
    elif kind == "seg-nrrd":
        nrrd.write_segmentation(labels, out)
    elif kind == "dicom-seg":
        write_dicom_seg(labels, image.volume, out, series_description="unetgui prediction", model_made=True)
    elif kind == "png":
        png.write_label_pngs(labels.labels, out, names=_png_names(image, out))
    else:
        raise UnetguiError(f"{out}: {_OUTPUTS}")


def _png_names(image: ImageInput, out: str) -> list[str] | None:
    """The PNG names of a prediction into folder ``out``: the inputs' stems (``12.tif`` -> ``12.png``), which
    must not collide (``case1.png`` and ``case1.tif`` would write one file twice)."""
    if _output_kind(out) != "png" or not image.slice_names:
        return None
    names = [os.path.splitext(n)[0] + ".png" for n in image.slice_names]
    # casefold: Case1.png and case1.png are one file on Windows and macOS
    twins = sorted(n for n, k in Counter(n.casefold() for n in names).items() if k > 1)
    if twins:
        clash = [n for n in image.slice_names if (os.path.splitext(n)[0] + ".png").casefold() == twins[0]]
        raise UnetguiError(f"{' and '.join(clash)} would both be written as {twins[0]} in {out}: rename one "
                           f"({len(twins)} such name(s))")
    return names
