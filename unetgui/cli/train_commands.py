"""``unetgui train``: argument parsing and printing around tasks/train.py."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from unetgui.cli.common import add_device, add_series, command, warn
from unetgui.cli.common import show as show_line
from unetgui.cli.outputs import check_writable
from unetgui.cli.progress import ProgressLine
from unetgui.core.errors import UnetguiError
from unetgui.core.progress import run_to_end

DEFAULT_MINUTES = 10.0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    train = command(sub, "train", "train (or fine-tune) a U-Net on annotated images", [
        "unetgui train --images ct/ --labels liver.nii.gz --output liver.unetgui --minutes 10",
        "unetgui train --dataset Task03_Liver/ --output liver.unetgui --minutes 60 --device cuda"])
    train.add_argument("--images", action="append",
                       help="DICOM series folder, NIfTI or NRRD file (.nrrd, .nhdr) or folder of 2-D images "
                            "(repeat for several cases)")
    train.add_argument("--labels", action="append",
                       help="NIfTI or NRRD label volume on the image grid (255 = not annotated), 3D Slicer "
                            "segmentation (.seg.nrrd), DICOM-SEG, or folder of masks with the images' file names "
                            "(one per --images)")
    add_series(train, "every --images folder")
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
    add_device(train)
    train.add_argument("--seed", type=int, default=0, help="seed of the split, the sampling and the weights (default 0)")
    train.add_argument("--preset", default="auto", choices=["auto", "cpu", "gpu", "small"],
                       help="model size and working resolution; auto: planned from the data and the device (docs/engine.md)")
    train.add_argument("--working-size", type=int, help="in-plane size the model works at (0 = native resolution)")
    train.add_argument("--context", type=int, default=0,
                       help="2.5-D: neighbouring slices on each side given to the model as extra channels (0-3)")
    train.add_argument("--axis", default="auto", choices=["auto", "axial", "coronal", "sagittal"],
                       help="the planes the model trains on and segments (auto: axial unless most of the annotation "
                       "lies in coronal or sagittal planes); kept in the model file")
    train.add_argument("--batch-size", type=int, help="patches per step (default: planned)")
    train.add_argument("--patch", type=int, help="patch side in pixels at the working size (default: planned)")
    train.add_argument("--steps-per-epoch", type=int, help="steps per epoch (default: planned from the budget)")
    train.add_argument("--learning-rate", type=float, help="peak learning rate of Adam (default: planned)")
    train.add_argument("--schedule", choices=["poly", "cosine"], help="learning-rate decay after the warm-up")
    train.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    train.add_argument("--no-augment", action="store_true", help="train without augmentation")
    train.add_argument("--border-weight", type=float, metavar="W0",
                       help="the U-Net paper's border weight map for touching objects (e.g. cells): pixels between two "
                            "objects weigh up to 1 + W0 in the loss (the paper: 10; 0 = off, the default)")
    train.set_defaults(run=_train)


def source_of(args: argparse.Namespace):
    """The data source of ``--images/--labels`` or ``--dataset`` (train and tune)."""
    from unetgui.tasks.sources import DatasetSource, FileSource

    if args.dataset and (args.images or args.labels):
        raise UnetguiError("give either --dataset, or --images with --labels")
    if not args.dataset and not (args.images and args.labels):
        raise UnetguiError("give --images and --labels (one per image), or --dataset")
    if args.dataset:
        return DatasetSource(args.dataset, args.seed, args.test_fraction, args.cache)
    if len(args.images) != len(args.labels):
        raise UnetguiError(f"give one --labels per --images ({len(args.images)} images, {len(args.labels)} labels)")
    return FileSource(tuple(args.images), tuple(args.labels), args.series)


def _train(args: argparse.Namespace) -> int:
    if not 0 <= args.test_fraction < 1:
        raise UnetguiError("--test-fraction must be at least 0 and below 1")
    if args.epochs is not None and args.epochs < 1:
        raise UnetguiError("--epochs must be at least 1")
    if args.workers is not None and args.workers < 0:
        raise UnetguiError("--workers must be 0 or more")
    if args.init and (args.context or args.working_size is not None or args.preset != "auto"):
        raise UnetguiError("--init keeps the model's architecture and working size: drop --context, --working-size "
                           "and --preset, or train from scratch")
    source = source_of(args)
    check_writable(args.output, "--output")
    from unetgui.tasks.train import process_rank

    rank = process_rank(args.device)  # under torchrun: rank 0 alone prints and writes the model
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet if rank else sys.stdout):
        return _train_in_process(args, source)


def _train_in_process(args: argparse.Namespace, source) -> int:
    from unetgui.engine.events import BatchStats, EpochStats
    from unetgui.tasks import models
    from unetgui.tasks.train import TrainRequest, TrainStarted, train

    minutes, overrides = _budget(args)
    if args.dataset:
        overrides["workers"] = args.workers  # default: the planner's (2 on a GPU, 0 on a CPU)
    request = TrainRequest(args.device, minutes, overrides, models.load(args.init) if args.init else None, args.output)
    bar, started = ProgressLine("training"), []

    def show(event) -> None:
        if isinstance(event, TrainStarted):
            started.append(event)
            warn(event.notes)
            if event.summary:
                show_line(event.summary)
            cfg = event.plan.train
            print(f"training on {event.device_name}: {event.train_slices} training and {event.val_slices} validation "
                  f"slices, {len(event.table)} label(s)" + (f", budget {cfg.minutes:g} min" if cfg.minutes else f", {cfg.epochs} epochs"))
            print(f"plan: {event.plan.summary()}")
        elif isinstance(event, BatchStats):
            cfg = started[0].plan.train
            done = event.elapsed if cfg.minutes else (event.epoch - 1) * event.steps + event.step
            total = cfg.minutes * 60 if cfg.minutes else cfg.epochs * event.steps
            bar(int(done), int(total), f"epoch {event.epoch} loss {event.loss:.3f}", event.eta)
        elif isinstance(event, EpochStats):
            show_line(_epoch_line(event, started[0].table))

    result = run_to_end(train(request, source, progress=ProgressLine("reading")), show)
    if result.rank != 0:
        return 0
    if result.checkpoint is None:
        raise UnetguiError("training ended before its first epoch: nothing to write")
    extra = models.postprocessing_summary(result.checkpoint)
    print(f"wrote {result.output} ({result.kept}{'; ' + extra if extra else ''})")
    for note in result.notes:
        warn([note], "note")
    return 0


def _epoch_line(event, table) -> str:
    dice = " ".join(f"{table.get(v).name if table.get(v) else v}={d:.3f}" for v, d in event.val_dice.items())
    error = f"{event.val_pixel_error:.4f}" if event.val_pixel_error is not None else "n/a"
    where = "val" if event.dice_on == "validation" else "annotated-slice"
    val = f" {where} loss {event.val_loss:.4f} pixel error {error} Dice {dice}" if event.val_loss is not None else ""
    best = "  *best*" if event.is_best and event.dice_on == "validation" else ""
    stop = f"  [stop: {event.stop_reason}]" if event.stop_reason else ""
    return f"epoch {event.epoch:3d} {event.elapsed:7.0f} s  loss {event.train_loss:.4f}{val}{best}{stop}"


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
    from unetgui.engine.planner import OVERRIDES  # torch-free

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
