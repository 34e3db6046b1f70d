"""What every command shares: the device and series options, examples under ``--help``, printing notes."""

from __future__ import annotations

import argparse
import sys

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
    for note in notes:
        print(f"{prefix}: {note}", file=sys.stderr)
