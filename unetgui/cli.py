"""Headless commands: ``unetgui info PATH`` and ``unetgui convert --input DICOM --output image.nii.gz``.

Exit codes: 0 success, 1 the input could not be used (the message says why), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from unetgui import __version__
from unetgui.core.errors import UnetguiError
from unetgui.formats import nifti
from unetgui.formats.dicom import ScanResult, load_series, scan

COMMANDS = ("info", "convert")


class _ProgressLine:
    """A one-line progress bar with ETA on stderr (only when stderr is a terminal)."""

    def __init__(self, label: str) -> None:
        self._label, self._start, self._tty = label, time.monotonic(), sys.stderr.isatty()

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self._tty or total <= 0:
            return
        elapsed = time.monotonic() - self._start
        eta = elapsed / done * (total - done) if done else 0.0
        bar = "#" * int(30 * done / total)
        sys.stderr.write(f"\r{self._label} [{bar:<30}] {done}/{total} ETA {eta:4.0f} s ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unetgui", description="U-Net segmentation of medical images. "
                                     "Without a command, the desktop app opens.")
    parser.add_argument("--version", action="version", version=f"unetgui {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="list the image series found in a DICOM folder, or describe a NIfTI file")
    info.add_argument("path")
    convert = sub.add_parser("convert", help="convert a DICOM series to NIfTI with its exact geometry")
    convert.add_argument("--input", required=True, help="DICOM folder (searched recursively), file or DICOMDIR")
    convert.add_argument("--output", required=True, help="output .nii or .nii.gz")
    convert.add_argument("--series", help="series to convert (key, SeriesInstanceUID or number from 'info'); "
                         "needed when the folder holds several")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _info(args.path) if args.command == "info" else _convert(args.input, args.output, args.series)
    except UnetguiError as exc:
        print(f"unetgui: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0


def _is_nifti(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith((".nii", ".nii.gz"))


def _info(path: str) -> int:
    if not os.path.exists(path):
        raise UnetguiError(f"{path}: no such file or folder")
    if _is_nifti(path):
        volume = nifti.read_image(path)
        z, y, x = volume.shape
        sz, sy, sx = volume.spacing
        print(f"NIfTI {path}: {x} x {y} x {z} voxels of {sx:.4g} x {sy:.4g} x {sz:.4g} mm, {volume.voxels.dtype}")
        for w in volume.warnings:
            print(f"  warning: {w}")
        return 0
    result = scan(path, _ProgressLine("scanning"))
    _print_scan(result)
    return 0 if result.series else 1


def _print_scan(result: ScanResult) -> None:
    print(f"{len(result.series)} series in {result.files_seen} file(s)")
    for i, s in enumerate(result.series, start=1):
        row = s.summary()
        print(f"{i:3d}. {row['modality']:<3} {row['slices']:>4} slices  {row['size']:>11}  {row['spacing_mm']:<22} "
              f"{row['date']:<8}  {row['description'] or '(no description)'}")
        print(f"     patient: {row['patient'] or '(none)'}   key: {s.key}")
        for note in s.notes:
            print(f"     note: {note}")
    for seg in result.segmentations:
        print(f"DICOM-SEG: {seg.path} (on series {seg.referenced_series_uid or 'unknown'})")
    if result.skipped:
        print(result.skipped_summary())


def _convert(source: str, output: str, series_key: str | None) -> int:
    if not output.lower().endswith((".nii", ".nii.gz")):
        raise UnetguiError(f"{output}: the output must end in .nii or .nii.gz")
    if not os.path.exists(source):
        raise UnetguiError(f"{source}: no such file or folder")
    result = scan(source, _ProgressLine("scanning"))
    if not result.series:
        raise UnetguiError(f"{source}: no DICOM image series found ({result.skipped_summary() or 'no files'})")
    if series_key is None and len(result.series) > 1:
        _print_scan(result)
        raise UnetguiError(f"{source} holds {len(result.series)} series: choose one with --series")
    series = result.find(series_key) if series_key else result.series[0]
    volume = load_series(series, _ProgressLine("loading"))
    for w in volume.warnings:
        print(f"warning: {w}", file=sys.stderr)
    nifti.write_image(volume, output)
    z, y, x = volume.shape
    sz, sy, sx = volume.spacing
    print(f"wrote {output}: {x} x {y} x {z} voxels of {sx:.4g} x {sy:.4g} x {sz:.4g} mm ({volume.voxels.dtype})")
    return 0
