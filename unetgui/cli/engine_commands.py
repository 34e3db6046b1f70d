"""``unetgui train``, ``predict`` and ``evaluate``: the engine from the command line.

The engine (and with it torch) is imported only when one of these commands runs, so ``info`` and
``convert`` start fast.
"""

from __future__ import annotations

import argparse
import contextlib
from collections import Counter
import math
import os
import sys

import numpy as np

from unetgui.cli.outputs import check_writable, write_json
from unetgui.cli.progress import ProgressLine
from unetgui.core.errors import UnetguiError
from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable, Volume, default_color
from unetgui.formats import label_tables, nifti, nrrd, png
from unetgui.formats.dicom_seg import write_dicom_seg
from unetgui.formats.inputs import ImageInput, is_nifti, open_image, open_labels

DEFAULT_MINUTES = 10.0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train (or fine-tune) a U-Net on annotated images")
    train.add_argument("--images", action="append",
                       help="DICOM series folder, NIfTI or NRRD file (.nrrd, .nhdr) or folder of 2-D images "
                            "(repeat for several cases)")
    train.add_argument("--labels", action="append",
                       help="NIfTI or NRRD label volume on the image grid (255 = not annotated), 3D Slicer "
                            "segmentation (.seg.nrrd), DICOM-SEG, or folder of masks with the images' file names "
                            "(one per --images)")
    train.add_argument("--dataset", help="a data set instead of --images/--labels: an nnU-Net / Decathlon folder "
                       "(dataset.json, imagesTr, labelsTr), a LiTS folder (volume-N, segmentation-N) or a CSV "
                       "manifest (image,label[,id,split]); split by case into training, validation and test "
                       "(stored in the model; see evaluate --dataset)")
    train.add_argument("--test-fraction", type=float, default=0.2,
                       help="with --dataset: the share of cases held out for testing (default 0.2; 0: none)")
    train.add_argument("--workers", type=int, help="with --dataset: DataLoader processes that draw the batches "
                       "from the cache (default: 2 on a GPU, 0 on a CPU, where a step outlasts the drawing)")
    train.add_argument("--config", help="a JSON file of settings, e.g. the best.json of unetgui tune; the flags "
                       "given on the command line win")
    train.add_argument("--cache", help="with --dataset: the folder of the preprocessed cache (default: "
                       ".unetgui-cache in the data set folder); later runs reuse it")
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
    train.add_argument("--axis", default="auto", choices=["auto", "axial", "coronal", "sagittal"],
                       help="the planes the model trains on and segments (auto: axial unless most of the annotation "
                       "lies in coronal or sagittal planes); kept in the model file")
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
    predict.add_argument("--input", required=True,
                         help="DICOM series folder, NIfTI or NRRD file (.nrrd, .nhdr) or folder of 2-D images")
    predict.add_argument("--output", required=True,
                         help=".nii.gz (labels on the input grid, with their names as .itksnap.txt and .ctbl next to it), "
                              ".seg.nrrd (3D Slicer segmentation), .dcm (DICOM-SEG, DICOM input only) or a folder (PNGs)")
    predict.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    predict.add_argument("--tta", action="store_true", help="average over flipped copies (4x slower, smoother)")
    predict.add_argument("--annotation", help="the labels this image was annotated with (as for train --labels): "
                                               "where the model's post-processing says so, objects that do not reach "
                                               "the annotated structure are removed, as the app does")
    predict.set_defaults(run=_predict)
    suggest = sub.add_parser("suggest", help="rank the slices to correct next by the model's uncertainty")
    suggest.add_argument("--model", required=True, help="model file (.unetgui)")
    suggest.add_argument("--input", required=True,
                         help="DICOM series folder, NIfTI or NRRD file (.nrrd, .nhdr) or folder of 2-D images")
    suggest.add_argument("--series", help="series key, SeriesInstanceUID or number (when the folder holds several)")
    suggest.add_argument("--labels", help="the annotation so far (as for train --labels): its annotated slices count "
                         "as reviewed and are never suggested (sparse labels: slices without 255; dense: slices with "
                         "a label)")
    suggest.add_argument("--count", type=int, default=10, help="how many slices to list (default 10; 0: all)")
    suggest.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    suggest.add_argument("--tta", action="store_true", help="flip test-time augmentation (its disagreement "
                         "raises the uncertainty)")
    suggest.add_argument("--json", help="also write the ranking to this JSON file")
    suggest.set_defaults(run=_suggest)
    evaluate = sub.add_parser("evaluate", help="Dice, IoU, HD95 and volumes of a prediction against the truth, "
                              "or of a model on a data set's test cases")
    evaluate.add_argument("--prediction", help="NIfTI label volume or folder of label PNGs; with --image also "
                          "NRRD, a Slicer .seg.nrrd or a DICOM-SEG")
    evaluate.add_argument("--truth", help="NIfTI label volume or folder of masks (255 = not annotated); with --image "
                          "also NRRD, a Slicer .seg.nrrd or a DICOM-SEG")
    evaluate.add_argument("--image", help="the image both label files belong to (DICOM folder, NIfTI, NRRD): they "
                          "are read onto its grid, in any label format, e.g. a DICOM-SEG against a .seg.nrrd")
    evaluate.add_argument("--series", help="with --image: series key, SeriesInstanceUID or number (when the folder "
                          "holds several)")
    evaluate.add_argument("--model", help="with --dataset: the model to segment the cases with")
    evaluate.add_argument("--dataset", help="with --model: a data set folder or manifest (as for train --dataset)")
    evaluate.add_argument("--split", default="test", choices=["test", "val", "train", "all"],
                          help="with --dataset: the cases of this split, as stored in the model (default test)")
    evaluate.add_argument("--csv", help="with --dataset: also write one row per case and label to this CSV file")
    evaluate.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
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
    if args.dataset and (args.images or args.labels):
        raise UnetguiError("give either --dataset, or --images with --labels")
    if not args.dataset and not (args.images and args.labels):
        raise UnetguiError("give --images and --labels (one per image), or --dataset")
    if not args.dataset and len(args.images) != len(args.labels):
        raise UnetguiError(f"give one --labels per --images ({len(args.images)} images, {len(args.labels)} labels)")
    if not 0 <= args.test_fraction < 1:
        raise UnetguiError("--test-fraction must be at least 0 and below 1")
    if args.epochs is not None and args.epochs < 1:
        raise UnetguiError("--epochs must be at least 1")
    if args.init and (args.context or args.working_size is not None or args.preset != "auto"):
        raise UnetguiError("--init keeps the model's architecture and working size: drop --context, --working-size "
                           "and --preset, or train from scratch")
    check_writable(args.output, "--output")
    from unetgui.engine import distributed

    rank, _ = distributed.init_from_env(args.device)  # under torchrun: rank 0 alone prints and writes the model
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet if rank else sys.stdout):
        return _train_in_process(args)


def _train_in_process(args: argparse.Namespace) -> int:
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.training_run import AnnotatedVolume, build_trainer

    init = model_file.load(args.init) if args.init else None
    if args.dataset:
        return _train_dataset(args, init)
    names = [os.path.basename(os.path.normpath(p)) for p in args.images]
    images, maps = [], []
    for name, image_path, label_path in zip(names, args.images, args.labels):
        image = open_image(image_path, progress=ProgressLine(f"loading {name}"))
        lm, notes = open_labels(label_path, image, init.labels if init else None)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        images.append(image)
        maps.append(lm)
    table = init.labels if init else _label_table(maps)
    volumes = [AnnotatedVolume(name, im.volume.voxels, lm.labels, im.volume.modality, tuple(im.volume.spacing[1:]),
                               float(im.volume.spacing[0])) for name, im, lm in zip(names, images, maps)]
    _check_table(table, {v for lm in maps for v in lm.used_values()}, init)
    trainer = build_trainer(volumes, table, args.device, *_budget(args), init)
    _run_and_save(trainer, table, args)
    return 0


def _check_table(table: LabelTable, used: set[int], init) -> None:
    unknown = sorted(used - set(table.values))
    if unknown:
        what = "the starting model does not segment" if init else "the data set's label names do not list"
        raise UnetguiError(f"the labels contain values {unknown} that {what} (it knows {list(table.values)})"
                           + ("; train from scratch to add labels" if init else ""))
    if not len(table):
        raise UnetguiError("the labels contain no structure (only background / not annotated)")


def _budget(args: argparse.Namespace) -> tuple[float | None, dict]:
    minutes = args.minutes if args.minutes is not None else (None if args.epochs else DEFAULT_MINUTES)
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "patch": args.patch,
                 "steps_per_epoch": args.steps_per_epoch, "learning_rate": args.learning_rate, "schedule": args.schedule,
                 "threads": args.threads, "seed": args.seed, "preset": None if args.preset == "auto" else args.preset,
                 "working_size": args.working_size, "context": args.context or None,
                 "augment": False if args.no_augment else None, "border_weight": args.border_weight,
                 "axis": None if args.axis == "auto" else args.axis}
    if args.config:
        overrides = {**_config_file(args.config), **{k: v for k, v in overrides.items() if v is not None}}
    return minutes, overrides


def _config_file(path: str) -> dict:
    """The settings of a JSON file: ``{"overrides": {...}}`` (unetgui tune's best.json) or a plain object."""
    import json

    from unetgui.engine.planner import OVERRIDES

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        settings = data.get("overrides", data) if isinstance(data, dict) else None
        if not isinstance(settings, dict):
            raise ValueError("not a JSON object of settings")
    except (OSError, ValueError, RecursionError) as exc:
        raise UnetguiError(f"--config {path}: {exc}") from exc
    unknown = sorted(set(settings) - set(OVERRIDES))
    if unknown:
        raise UnetguiError(f"--config {path}: unknown settings {unknown} (known: {', '.join(OVERRIDES)})")
    return settings


def dataset_volumes(args: argparse.Namespace, init):
    """The training and validation cases of ``--dataset`` through the cache on disk, one at a time
    (engine/cache.py), memory-mapped: (dataset, splits, volumes, label table, cache folder)."""
    from unetgui.engine import cache, distributed
    from unetgui.engine.training_run import AnnotatedVolume

    dataset, splits = _dataset_split(args.dataset, args.seed, args.test_fraction)
    table = init.labels if init else dataset.table
    root = args.cache or os.path.join(dataset.root if os.path.isdir(dataset.root) else os.path.dirname(dataset.root),
                                      ".unetgui-cache")
    used = splits["train"] + splits["val"]
    volumes, values, read = [], set(), 0
    bar = ProgressLine("reading cases")
    for k, index in enumerate(used):
        case = dataset.cases[index]
        bar(k, len(used), case.id)

        def load(case=case):
            image = open_image(case.image)
            lm, notes = open_labels(case.label, image, table)
            for note in notes:
                print(f"warning: {case.id}: {note}", file=sys.stderr)
            return image.volume.voxels, lm.labels, image.volume.modality, tuple(image.volume.spacing[1:])

        try:  # under torchrun rank 0 writes the entry, the others then read it
            entry, written = distributed.rank_zero_first(lambda case=case, load=load: cache.native(
                root, case.id, [case.image, case.label], load))
        except OSError as exc:
            raise UnetguiError(f"the cache {root} cannot be written ({exc.strerror or exc}): choose another with --cache") from exc
        read += written
        values |= set(entry.values)
        volumes.append(AnnotatedVolume(case.id, entry.voxels, entry.labels, entry.modality or dataset.modality,
                                       entry.spacing_yx))
    bar(len(used), len(used))
    if table is None:
        table = LabelTable(tuple(Label(v, f"Label {v}", default_color(v)) for v in sorted(values)))
    _check_table(table, values, init)
    print(f"data set {dataset.root}: {len(dataset.cases)} cases ({dataset.layout}); cache {root}: "
          f"{read} case(s) read now, {len(used) - read} reused")
    return dataset, splits, volumes, table, root


def _train_dataset(args: argparse.Namespace, init) -> int:
    """Train on a data set folder; the split by case is stored in the model."""
    from unetgui.engine.training_run import build_trainer

    dataset, splits, volumes, table, root = dataset_volumes(args, init)
    minutes, overrides = _budget(args)
    if args.workers is not None and args.workers < 0:
        raise UnetguiError("--workers must be 0 or more")
    overrides["workers"] = args.workers  # default: the planner's (2 on a GPU, 0 on a CPU)
    trainer = build_trainer(volumes, table, args.device, minutes, overrides, init,
                            val_cases=list(range(len(splits["train"]), len(volumes))), cache_root=root)
    trainer.dataset_split = {"layout": dataset.layout, "cases": len(dataset.cases),
                             **{name: [dataset.cases[i].id for i in splits[name]] for name in ("train", "val", "test")}}
    print(f"split by case: {len(splits['train'])} training, {len(splits['val'])} validation, "
          f"{len(splits['test'])} test case(s) (stored in the model)")
    _run_and_save(trainer, table, args)
    return 0


def _run_and_save(trainer, table: LabelTable, args: argparse.Namespace) -> None:
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine import postprocess
    from unetgui.engine.training import BatchStats

    minutes = trainer.config.minutes
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
    if trainer.rank != 0:
        return  # rank 0 writes the model (the weights are the same on every rank)
    best = trainer.best_checkpoint()
    split = getattr(trainer, "dataset_split", None)
    if split is not None:  # case ids of a data set are the file names it gave, not patient data
        best.info["dataset"] = split
    model_file.save(best, args.output)
    kept = "best epoch" if trainer.val_refs else "final weights, epoch"
    post = best.info.get("postprocessing")
    largest, anchored = postprocess.rule_values(post, postprocess.KEY), postprocess.rule_values(post, postprocess.ANCHORED)
    extra = f"; keeps the largest object of label(s) {largest}" if largest else ""
    if anchored:
        extra += (f"; in the annotated volume (the app, predict --annotation) only the objects that reach the "
                  f"annotation of label(s) {anchored}")
    print(f"wrote {args.output} ({kept} {trainer.best_epoch}{extra})")
    for note in trainer.notes:
        print(f"note: {note}")


def _predict(args: argparse.Namespace) -> int:
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.inference import Predictor

    out = args.output
    parent = os.path.dirname(os.path.abspath(out))
    if _output_kind(out) is None:
        raise UnetguiError(f"{out}: {_OUTPUTS}")
    if not os.path.isdir(parent):
        raise UnetguiError(f"{out}: its folder {parent} does not exist")
    checkpoint = model_file.load(args.model)
    image = open_image(args.input, progress=ProgressLine("loading"))
    if _output_kind(out) == "dicom-seg" and image.kind != "dicom":
        raise UnetguiError("a DICOM-SEG output needs a DICOM input")
    _png_names(image, out)  # a collision is found before the work, not after
    predictor = Predictor(checkpoint, device=args.device, tta=args.tta, compile=False)  # one volume: no time to compile
    bar = ProgressLine("segmenting")
    annotation = None
    if args.annotation:
        drawn, notes = open_labels(args.annotation, image, checkpoint.labels)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        annotation = drawn.labels
    prediction = predictor.predict(image.volume.voxels, progress=lambda d, t, m: bar(d, t, m), keep_probabilities=False,
                                   spacing=tuple(image.volume.spacing), annotation=annotation)
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
    predictor = Predictor(checkpoint, device=args.device, tta=args.tta, compile=False)  # one volume: no time to compile
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


def _evaluate_dataset(args: argparse.Namespace) -> int:
    """One row per case and label of the split, then the mean and median per label (and a CSV)."""
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.inference import Predictor
    from unetgui.engine.metrics import evaluate
    from unetgui.formats.dataset import read_dataset

    for flag in ("csv", "json"):
        if getattr(args, flag):
            check_writable(getattr(args, flag), f"--{flag}")
    checkpoint = model_file.load(args.model)
    dataset = read_dataset(args.dataset)
    stored = checkpoint.info.get("dataset") or {}
    if args.split == "all":
        ids = [c.id for c in dataset.cases]
    elif args.split in stored:
        ids = list(stored[args.split])
    else:
        raise UnetguiError(f"{args.model} was not trained with --dataset, so it has no {args.split} split: "
                           "use --split all")
    missing = [i for i in ids if i not in {c.id for c in dataset.cases}]
    if missing:
        raise UnetguiError(f"the model's {args.split} split names {len(missing)} case(s) this data set lacks "
                           f"(e.g. {missing[0]}): is it the data set the model was trained on?")
    if not ids:
        raise UnetguiError(f"the model's {args.split} split has no cases (train with --test-fraction above 0)")
    predictor = Predictor(checkpoint, device=args.device, compile=False)  # cases of many shapes
    rows = []
    bar = ProgressLine("evaluating")
    print(f"{'case':<24} {'label':<12} {'Dice':>7} {'IoU':>7} {'HD95 mm':>9} {'pred mL':>10} {'truth mL':>10}")
    for k, case_id in enumerate(ids):
        bar(k, len(ids), case_id)
        case = dataset.find(case_id)
        image = open_image(case.image)
        truth, _ = open_labels(case.label, image, checkpoint.labels)
        prediction = predictor.predict(image.volume.voxels, keep_probabilities=False, spacing=tuple(image.volume.spacing))
        for m in evaluate(prediction.labels, truth.labels, image.volume.spacing):
            name = checkpoint.labels.get(m.label).name if checkpoint.labels.get(m.label) else str(m.label)
            rows.append({"case": case_id, "name": name, **m.to_json()})
            hd = f"{m.hd95_mm:9.2f}" if math.isfinite(m.hd95_mm) else f"{'n/a':>9}"
            print(f"{case_id[:24]:<24} {name[:12]:<12} {m.dice:7.4f} {m.iou:7.4f} {hd} {m.volume_pred_ml:10.3f} "
                  f"{m.volume_truth_ml:10.3f}", flush=True)
    bar(len(ids), len(ids))
    summary = []
    for name in dict.fromkeys(r["name"] for r in rows):
        mine = [r for r in rows if r["name"] == name]
        for stat, fn in (("mean", np.mean), ("median", np.median)):
            values = {k: float(fn(finite)) if (finite := [r[k] for r in mine if r[k] is not None and math.isfinite(r[k])])
                      else None for k in ("dice", "iou", "hd95_mm", "volume_pred_ml", "volume_truth_ml")}
            summary.append({"case": stat, "name": name, "label": mine[0]["label"], **values})
            hd = f"{values['hd95_mm']:9.2f}" if values["hd95_mm"] is not None else f"{'n/a':>9}"
            print(f"{stat:<24} {name[:12]:<12} {values['dice']:7.4f} {values['iou']:7.4f} {hd}")
    print(f"{len(ids)} case(s) of the {args.split} split")
    if args.csv:
        _write_case_csv(args.csv, rows + summary)
    if args.json:
        write_json(args.json, {"split": args.split, "cases": rows, "summary": summary})
    return 0


def _write_case_csv(path: str, rows: list[dict]) -> None:
    import csv
    import io

    from unetgui.core import atomic, csvcell

    columns = ["case", "label", "name", "dice", "iou", "hd95_mm", "volume_pred_ml", "volume_truth_ml"]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None or (isinstance(row.get(k), float) and not math.isfinite(row[k]))
                         else csvcell.escape(str(row[k])) if isinstance(row.get(k), str) else row[k] for k in columns})
    atomic.write_bytes(path, out.getvalue().encode("utf-8"))


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


def _grid_of(labels: LabelMap) -> Volume:
    """A zero-cost stand-in volume with the labels' grid, to map another label file onto it."""
    return Volume(np.broadcast_to(np.uint8(0), labels.shape), labels.affine)


def _dataset_split(path: str, seed: int, test_fraction: float):
    from unetgui.engine.data import split_cases
    from unetgui.formats.dataset import read_dataset

    dataset = read_dataset(path)
    splits = split_cases(len(dataset.cases), seed, [c.split for c in dataset.cases], test_fraction)
    return dataset, splits


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


def _evaluate(args: argparse.Namespace) -> int:
    from unetgui.engine.metrics import evaluate

    if args.dataset or args.model:
        if args.prediction or args.truth or not (args.dataset and args.model):
            raise UnetguiError("give --model with --dataset, or --prediction with --truth")
        return _evaluate_dataset(args)
    if not (args.prediction and args.truth):
        raise UnetguiError("give --prediction and --truth (or --model with --dataset)")
    if args.json:
        check_writable(args.json, "--json")
    if args.series and not args.image:
        raise UnetguiError("--series picks the series of --image: give --image too")
    if args.image:
        image = open_image(args.image, args.series)
        truth, pred = (open_labels(path, image)[0] for path in (args.truth, args.prediction))
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
        print(f"note: {note}", file=sys.stderr)
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
