"""Headless commands: each parses its arguments, runs a task (unetgui/tasks/) and prints.

Exit codes (the one list; README "Exit codes" repeats it):
  0    success
  1    the input could not be used, a file could not be read or written, or memory ran out
       (a one-line reason on stderr, no traceback)
  2    wrong usage (an unknown command or option, a missing argument)
  3    an unexpected error: a bug (one line on stderr, the traceback in a log file, see core/crashlog.py)
  130  interrupted (Ctrl+C)

  unetgui info PATH
  unetgui convert --input DICOM --output image.nii.gz [--series KEY]
  unetgui train (--images PATH --labels PATH [...] | --dataset DIR) --output MODEL [--init MODEL] [--minutes M]
                [--epochs N] [--axis auto|axial|coronal|sagittal] [--config best.json] [--device auto|cpu|cuda] [--seed S]
  unetgui predict --model MODEL --input PATH [--series KEY] --output OUT [--device ...] [--tta]
  unetgui suggest --model MODEL --input PATH [--series KEY] [--labels PATH] [--count N] [--json FILE]
  unetgui evaluate --prediction P --truth T [--image IMAGE [--series KEY]] [--json FILE] [--csv FILE]
  unetgui evaluate --model MODEL --image IMAGE --truth T      (the model on the truth's annotated slices)
  unetgui evaluate --model MODEL --dataset DIR [--split test] (the model on a data set's cases)
  unetgui stats --image IMAGE --labels LABELS [--series KEY] [--csv FILE] [--json FILE] [--no-surface]
  unetgui tune (--images PATH --labels PATH ... | --dataset DIR) --output MODEL (--trials N | --minutes M)
               [--trial-minutes T] [--storage URL] [--study NAME] [--params ...]
  unetgui export (--input IMAGE --labels LABELS | --project FOLDER [--series ID]) --output FOLDER [--png] [--overlay]
                 [--nifti] [--image-nifti] [--dicom-seg] [--seg-nrrd] [--metrics] [--mesh stl|obj|ply [--mesh-space LPS|RAS]
                 [--mesh-smoothing N] [--mesh-decimate SHARE]] [--model MODEL] [--include-patient-id]
  unetgui export-model --model MODEL --onnx OUT.onnx
  unetgui archive echo|find|get|send (--node NAME | --host H --port P --called-aet AET | --url URL) [...]
  unetgui archive cache [--clear [--series UID ...]]
                  find [--patient-id ID] [--patient-name N] [--study-date FROM-TO] [--modality M] [--json FILE]
                  get --series UID [--study UID] --output DIR [--via get|move|wado]; send FILE_OR_FOLDER...
"""

from __future__ import annotations

import argparse
import sys

from unetgui import __version__
from unetgui.cli import (
    archive_commands, evaluate_commands, export_commands, formats_commands, model_commands, search_commands,
    segment_commands, stats_commands, train_commands,
)
from unetgui.core import crashlog
from unetgui.core.errors import UnetguiError
from unetgui.core.textsafe import printable

EPILOG = """exit codes: 0 done, 1 the input could not be used (one line on stderr), 2 wrong usage,
  3 a bug (one line, the traceback in a log file), 130 interrupted

examples:
  unetgui ct/                        open a DICOM folder in the app
  unetgui train --help               a command's options and examples"""

COMMANDS = ("info", "convert", "train", "predict", "suggest", "evaluate", "stats", "export", "tune", "export-model",
            "archive")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unetgui", description="U-Net segmentation of medical images. "
                                     "Without a command, the desktop app opens (with a path: that image or project).",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"unetgui {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    formats_commands.add_parsers(sub)
    train_commands.add_parsers(sub)
    segment_commands.add_parsers(sub)
    evaluate_commands.add_parsers(sub)
    stats_commands.add_parsers(sub)
    export_commands.add_parsers(sub)
    search_commands.add_parsers(sub)
    model_commands.add_parsers(sub)
    archive_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except UnetguiError as exc:
        print(f"unetgui: error: {printable(exc, 4000)}", file=sys.stderr)  # names from files: escaped
        return 1
    except KeyboardInterrupt:
        print("unetgui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except (OSError, MemoryError) as exc:  # a full disk, a file gone, memory: the user's to fix
        print(f"unetgui: error: {printable(crashlog.report(exc, args.command), 4000)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug, reported in one line and logged
        print(f"unetgui: error: {printable(crashlog.report(exc, args.command), 4000)}", file=sys.stderr)
        return 3
