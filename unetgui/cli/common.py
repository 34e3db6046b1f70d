"""What every command shares: the device and series options, examples under ``--help``, printing notes."""

from __future__ import annotations

import argparse
import sys

from unetgui.core.textsafe import printable
from unetgui.engine.config import DEVICES  # torch-free

SERIES_HELP = "series key, SeriesInstanceUID or number, when a DICOM folder holds several (unetgui info lists them)"


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help="where the model runs (auto: a CUDA GPU, then an Apple GPU, then the CPU)")


def add_series(parser: argparse.ArgumentParser, what: str = "the image") -> None:
    parser.add_argument("--series", help=f"{SERIES_HELP}; applies to {what}")


def command(sub: argparse._SubParsersAction, name: str, help: str, examples: list[str],
            description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with ``examples``."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(name, help=help, description=description or help, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def warn(notes, prefix: str = "warning") -> None:
    """Notes on stderr, one line each; text from files escaped (core.textsafe.printable)."""
    for note in notes:
        print(f"{prefix}: {printable(note, 4000)}", file=sys.stderr)


def open_image_with_labels(image_path: str, series: str | None, labels_path: str):
    """The image (read with a progress line) and a label file on its grid, their warnings and notes printed:
    ``(ImageInput, LabelMap)``."""
    from unetgui.cli.progress import ProgressLine
    from unetgui.formats.inputs import open_image, open_labels

    image = open_image(image_path, series, ProgressLine("reading"))
    warn(image.volume.warnings)
    labels, notes = open_labels(labels_path, image)
    warn(notes)
    return image, labels


def show(text: object) -> None:
    """Print ``text`` (which may hold names from files) line by line, control characters escaped."""
    for line in str(text).split("\n"):
        print(printable(line, 4000), flush=True)
