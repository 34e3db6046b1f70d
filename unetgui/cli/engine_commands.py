"""``unetgui train``, ``predict`` and ``evaluate``: the engine from the command line.

The engine (and with it torch) is imported only when one of these commands runs, so ``info`` and
``convert`` start fast.
"""

from __future__ import annotations

import argparse
from collections import Counter
import math
import os
import sys

import numpy as np

from unetgui.cli.outputs import check_writable, write_json
from unetgui.cli.progress import ProgressLine
from unetgui.core.errors import UnetguiError
from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable, Volume, default_color
from unetgui.formats import nifti, png
from unetgui.formats.dicom_seg import write_dicom_seg
from unetgui.formats.inputs import ImageInput, is_nifti, open_image, open_labels

DEFAULT_MINUTES = 10.0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train (or fine-tune) a U-Net on annotated images")
    train.add_argument("--images", action="append", required=True,
                       help="DICOM series folder, NIfTI file or folder of 2-D images (repeat for several cases)")
    train.add_argument("--labels", action="append", required=True,
                       help="NIfTI label volume on the image grid (255 = not annotated), DICOM-SEG, or folder of "
                            "masks with the images' file names (one per --images)")
    train.add_argument("--output", required=True, help="model file to write (.unetgui)")
    train.add_argument("--init", help="start from this model (fine-tuning)")
    train.add_argument("--minutes", type=float, help=f"time budget (default {DEFAULT_MINUTES:g} if --epochs is not given)")
    train.add_argument("--epochs", type=int, help="epoch limit (an epoch is --steps-per-epoch batches)")
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--preset", default="auto", choices=["auto", "cpu", "gpu", "small"],
                       help="model size and working resolution; auto: planned from the data and the device (docs/engine.md)")
    train.add_argument("--working-size", type=int, help="in-plane size the model works at (0 = native resolution)")
    train.add_argument("--context", type=int, default=0,
                       help="2.5-D: neighbouring slices on each side given to the model as extra channels (0-3)")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--patch", type=int)
    train.add_argument("--steps-per-epoch", type=int)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--schedule", choices=["poly", "cosine"], help="learning-rate decay after the warm-up")
    train.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--border-weight", type=float, metavar="W0",
                       help="the U-Net paper's border weight map for touching objects (e.g. cells): pixels between two "
                            "objects weigh up to 1 + W0 in the loss (the paper: 10; 0 = off, the default)")
    train.set_defaults(run=_train)
    predict = sub.add_parser("predict", help="segment an image with a trained model")
    predict.add_argument("--model", required=True)
    predict.add_argument("--input", required=True, help="DICOM series folder, NIfTI file or folder of 2-D images")
    predict.add_argument("--output", required=True,
                         help=".nii.gz (labels on the input grid), .dcm (DICOM-SEG, DICOM input only) or a folder (PNGs)")
    predict.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    predict.add_argument("--tta", action="store_true", help="average over flipped copies (4x slower, smoother)")
    predict.set_defaults(run=_predict)
    suggest = sub.add_parser("suggest", help="rank the slices to correct next by the model's uncertainty")
    suggest.add_argument("--model", required=True, help="model file (.unetgui)")
    suggest.add_argument("--input", required=True, help="DICOM series folder, NIfTI file or folder of 2-D images")
    suggest.add_argument("--series", help="series key, SeriesInstanceUID or number (when the folder holds several)")
    suggest.add_argument("--labels", help="the annotation so far: its annotated slices count as reviewed and are "
                         "never suggested (sparse labels: slices without 255; dense: slices with a label)")
    suggest.add_argument("--count", type=int, default=10, help="how many slices to list (default 10; 0: all)")
    suggest.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    suggest.add_argument("--tta", action="store_true", help="flip test-time augmentation (its disagreement "
                         "raises the uncertainty)")
    suggest.add_argument("--json", help="also write the ranking to this JSON file")
    suggest.set_defaults(run=_suggest)
    evaluate = sub.add_parser("evaluate", help="Dice, IoU, HD95 and volumes of a prediction against the truth")
    evaluate.add_argument("--prediction", required=True, help="NIfTI label volume or folder of label PNGs")
    evaluate.add_argument("--truth", required=True, help="NIfTI label volume or folder of masks (255 = not annotated)")
    evaluate.add_argument("--json", help="also write the metrics to this JSON file")
    evaluate.set_defaults(run=_evaluate)


def _label_table(maps: list[LabelMap]) -> LabelTable:
    """The union of the label tables and of the values actually present, in value order."""
    table = LabelTable()
    for lm in maps:
        for value in sorted(set(lm.table.values) | set(lm.used_values())):
            if table.get(value) is None:
                table = table.with_label(lm.table.get(value) or Label(value, f"Label {value}", default_color(value)))
    return table


def _train(args: argparse.Namespace) -> int:
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.training import BatchStats
    from unetgui.engine.training_run import AnnotatedVolume, build_trainer

    if len(args.images) != len(args.labels):
        raise UnetguiError(f"give one --labels per --images ({len(args.images)} images, {len(args.labels)} labels)")
    if args.epochs is not None and args.epochs < 1:
        raise UnetguiError("--epochs must be at least 1")
    if args.init and (args.context or args.working_size is not None or args.preset != "auto"):
        raise UnetguiError("--init keeps the model's architecture and working size: drop --context, --working-size "
                           "and --preset, or train from scratch")
    check_writable(args.output, "--output")
    init = model_file.load(args.init) if args.init else None
    images = [open_image(p, progress=ProgressLine(f"loading {os.path.basename(p)}")) for p in args.images]
    maps = []
    for path, image in zip(args.labels, images):
        lm, notes = open_labels(path, image, init.labels if init else None)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        maps.append(lm)
    table = init.labels if init else _label_table(maps)
    unknown = sorted({v for lm in maps for v in lm.used_values()} - set(table.values))
    if unknown:
        raise UnetguiError(f"the labels contain values {unknown} that the starting model does not segment "
                           f"(it knows {list(table.values)}); train from scratch to add labels")
    if not len(table):
        raise UnetguiError("the labels contain no structure (only background / not annotated)")
    minutes = args.minutes if args.minutes is not None else (None if args.epochs else DEFAULT_MINUTES)
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "patch": args.patch,
                 "steps_per_epoch": args.steps_per_epoch, "learning_rate": args.learning_rate, "schedule": args.schedule,
                 "threads": args.threads, "seed": args.seed, "preset": None if args.preset == "auto" else args.preset,
                 "working_size": args.working_size, "context": args.context or None,
                 "augment": False if args.no_augment else None, "border_weight": args.border_weight}
    volumes = [AnnotatedVolume(os.path.basename(os.path.normpath(im.path)), im.volume.voxels, lm.labels,
                               im.volume.modality, tuple(im.volume.spacing[1:])) for im, lm in zip(images, maps)]
    trainer = build_trainer(volumes, table, args.device, minutes, overrides, init)
    cfg, plan = trainer.config, trainer.plan
    print(f"training on {trainer.device_name}: {len(trainer.train_refs)} training and {len(trainer.val_refs)} "
          f"validation slices, {len(table)} label(s)" + (f", budget {minutes:g} min" if minutes else f", {cfg.epochs} epochs"))
    print(f"plan: {plan.summary()}")
    bar = ProgressLine("training")
    for event in trainer.run():
        if isinstance(event, BatchStats):
            done = event.elapsed if minutes else (event.epoch - 1) * event.steps + event.step
            total = minutes * 60 if minutes else cfg.epochs * event.steps
            bar(int(done), int(total), f"epoch {event.epoch} loss {event.loss:.3f}", event.eta)
            continue
        dice = " ".join(f"{table.get(v).name}={d:.3f}" for v, d in event.val_dice.items())
        error = f"{event.val_pixel_error:.4f}" if event.val_pixel_error is not None else "n/a"
        where = "val" if event.dice_on == "validation" else "annotated-slice"
        val = f" {where} loss {event.val_loss:.4f} pixel error {error} Dice {dice}" if event.val_loss is not None else ""
        print(f"epoch {event.epoch:3d} {event.elapsed:7.0f} s  loss {event.train_loss:.4f}{val}"
              f"{'  *best*' if event.is_best and event.dice_on == 'validation' else ''}{f'  [stop: {event.stop_reason}]' if event.stop_reason else ''}",
              flush=True)
    best = trainer.best_checkpoint()
    model_file.save(best, args.output)
    kept = "best epoch" if trainer.val_refs else "final weights, epoch"
    post = best.info.get("postprocessing") or {}
    extra = f"; keeps the largest component of label(s) {post['largest_component']}" if post.get("largest_component") else ""
    print(f"wrote {args.output} ({kept} {trainer.best_epoch}{extra})")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.inference import Predictor

    out = args.output
    parent = os.path.dirname(os.path.abspath(out))
    if not (is_nifti(out) or out.lower().endswith(".dcm") or os.path.splitext(out)[1] == ""):
        raise UnetguiError(f"{out}: the output must be .nii/.nii.gz, .dcm or a folder")
    if not os.path.isdir(parent):
        raise UnetguiError(f"{out}: its folder {parent} does not exist")
    checkpoint = model_file.load(args.model)
    image = open_image(args.input, progress=ProgressLine("loading"))
    if out.lower().endswith(".dcm") and image.kind != "dicom":
        raise UnetguiError("a DICOM-SEG output needs a DICOM input")
    _png_names(image, out)  # a collision is found before the work, not after
    predictor = Predictor(checkpoint, device=args.device, tta=args.tta)
    bar = ProgressLine("segmenting")
    prediction = predictor.predict(image.volume.voxels, progress=lambda d, t, m: bar(d, t, m), keep_probabilities=False)
    labels = LabelMap(prediction.labels, image.volume.affine.copy(), checkpoint.labels)
    _write_prediction(labels, image, out)
    z = image.volume.shape[0]
    print(f"wrote {out}: {z} slice(s) in {prediction.seconds:.1f} s ({prediction.seconds / z * 1000:.0f} ms/slice, "
          f"{predictor.device_name})")
    return 0


def reviewed_slices(labels: np.ndarray) -> np.ndarray:
    """Slices a label volume annotates: sparse annotation (some 255) -> the slices without 255; a dense
    label volume -> the slices with any label (as the app marks loaded label slices reviewed)."""
    unannotated = labels == UNANNOTATED
    if unannotated.any():
        return ~unannotated.any(axis=(1, 2))
    return (labels > 0).any(axis=(1, 2))


def _suggest(args: argparse.Namespace) -> int:
    from unetgui.core.ranking import rank_slices, slice_scores
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.inference import Predictor

    if args.count < 0:
        raise UnetguiError("--count must be 0 (all) or more")
    if args.json:
        check_writable(args.json, "--json")
    checkpoint = model_file.load(args.model)
    image = open_image(args.input, args.series, progress=ProgressLine("loading"))
    reviewed = np.zeros(image.volume.shape[0], bool)
    if args.labels:
        labels, notes = open_labels(args.labels, image, checkpoint.labels)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        reviewed = reviewed_slices(labels.labels)
    predictor = Predictor(checkpoint, device=args.device, tta=args.tta)
    todo = [z for z in range(image.volume.shape[0]) if not reviewed[z]]
    if not todo:
        raise UnetguiError("every slice is annotated already: nothing to suggest")
    bar = ProgressLine("segmenting")
    prediction = predictor.predict(image.volume.voxels, todo, progress=lambda d, t, m: bar(d, t, m), keep_probabilities=False)
    scores = np.full(image.volume.shape[0], np.nan)
    scores[todo] = slice_scores(prediction.uncertainty[todo], prediction.labels[todo])
    picks = rank_slices(scores, reviewed, args.count or None)
    print("rank\tslice\tnumber\tscore\tpriority   (slice: 0-based index along z; number: 1-based, as the app shows)")
    for rank, pick in enumerate(picks, start=1):
        print(f"{rank}\t{pick.slice}\t{pick.slice + 1}\t{pick.score:.1f}\t{pick.priority:.1f}")
    if args.json:
        write_json(args.json, {"reviewed": [int(z) for z in np.flatnonzero(reviewed)],
                               "suggestions": [{"rank": r, "slice": p.slice, "score": p.score, "priority": p.priority}
                                               for r, p in enumerate(picks, start=1)],
                               "scores": [None if not np.isfinite(v) else float(v) for v in scores]})
    return 0


def _write_prediction(labels: LabelMap, image: ImageInput, out: str) -> None:
    if is_nifti(out):
        nifti.write_labels(labels, out)
    elif out.lower().endswith(".dcm"):
        write_dicom_seg(labels, image.volume, out, series_description="unetgui prediction")
    elif os.path.splitext(out)[1] == "":
        png.write_label_pngs(labels.labels, out, names=_png_names(image, out))
    else:
        raise UnetguiError(f"{out}: the output must be .nii/.nii.gz, .dcm or a folder")


def _png_names(image: ImageInput, out: str) -> list[str] | None:
    """The PNG names of a prediction into folder ``out``: the inputs' stems (``12.tif`` -> ``12.png``), which
    must not collide (``case1.png`` and ``case1.tif`` would write one file twice)."""
    if is_nifti(out) or out.lower().endswith(".dcm") or not image.slice_names:
        return None
    names = [os.path.splitext(n)[0] + ".png" for n in image.slice_names]
    # casefold: Case1.png and case1.png are one file on Windows and macOS
    twins = sorted(n for n, k in Counter(n.casefold() for n in names).items() if k > 1)
    if twins:
        clash = [n for n in image.slice_names if (os.path.splitext(n)[0] + ".png").casefold() == twins[0]]
        raise UnetguiError(f"{' and '.join(clash)} would both be written as {twins[0]} in {out}: rename one "
                           f"({len(twins)} such name(s))")
    return names


def _grid_of(labels: LabelMap) -> Volume:
    """A zero-cost stand-in volume with the labels' grid, to map another label file onto it."""
    return Volume(np.broadcast_to(np.uint8(0), labels.shape), labels.affine)


def _evaluate(args: argparse.Namespace) -> int:
    from unetgui.engine.metrics import evaluate

    if args.json:
        check_writable(args.json, "--json")
    if is_nifti(args.truth):
        truth = nifti.read_labels(args.truth)
        if not is_nifti(args.prediction):
            raise UnetguiError("compare a NIfTI truth with a NIfTI prediction")
        pred = nifti.read_labels(args.prediction, _grid_of(truth))
        spacing = _grid_of(truth).spacing
        truth_labels, pred_labels = truth.labels, pred.labels
    else:
        names = [os.path.basename(p) for p in png.list_images(args.truth)]
        if not names:
            raise UnetguiError(f"{args.truth}: no masks found")
        truth_labels = png.read_mask_folder(args.truth, names)
        pred_labels = png.read_mask_folder(args.prediction, names)
        spacing = (1.0, 1.0, 1.0)
    if pred_labels.shape != truth_labels.shape:
        raise UnetguiError(f"the prediction {pred_labels.shape} and the truth {truth_labels.shape} differ in size")
    results = evaluate(pred_labels, truth_labels, spacing)
    print(f"{'label':>5} {'Dice':>7} {'IoU':>7} {'HD95 mm':>9} {'pred mL':>10} {'truth mL':>10}")
    for m in results:
        hd = f"{m.hd95_mm:9.2f}" if math.isfinite(m.hd95_mm) else f"{'n/a':>9}"
        print(f"{m.label:5d} {m.dice:7.4f} {m.iou:7.4f} {hd} {m.volume_pred_ml:10.3f} {m.volume_truth_ml:10.3f}")
    if args.json:
        write_json(args.json, {"metrics": [m.to_json() for m in results], "spacing_mm": list(spacing)})
    return 0
