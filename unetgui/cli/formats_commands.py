"""``unetgui info`` and ``unetgui convert``: DICOM/NIfTI/NRRD inspection and DICOM conversion (no torch)."""

from __future__ import annotations

import argparse
import os

from unetgui.cli.common import command, show, warn
from unetgui.cli.progress import ProgressLine
from unetgui.core.errors import FormatError, UnetguiError
from unetgui.formats import nifti, nrrd
from unetgui.formats.dicom import ScanResult, load_series, scan
from unetgui.formats.inputs import is_nifti


def add_parsers(sub: argparse._SubParsersAction) -> None:
    info = command(sub, "info", "list the image series found in a DICOM folder, or describe a NIfTI or NRRD file "
                   "(.nrrd, .nhdr, .seg.nrrd) or a model file (.unetgui)", [
                       "unetgui info /media/cdrom            # the series on a CD, DICOMDIR included",
                       "unetgui info liver.unetgui           # the model card"])
    info.add_argument("path", help="DICOM folder (searched recursively) or file, NIfTI or NRRD file, model file")
    info.set_defaults(run=lambda a: _info(a.path))
    convert = command(sub, "convert", "convert a DICOM series to NIfTI with its exact geometry", [
        "unetgui convert --input ct/ --output ct.nii.gz",
        "unetgui convert --input study/ --series 3 --output t1.nii.gz"])
    convert.add_argument("--input", required=True, help="DICOM folder (searched recursively), file or DICOMDIR")
    convert.add_argument("--output", required=True, help="output .nii or .nii.gz")
    convert.add_argument("--series", help="series to convert (key, SeriesInstanceUID or number from 'info'); "
                         "needed when the folder holds several")
    convert.set_defaults(run=lambda a: _convert(a.input, a.output, a.series))


def _info(path: str) -> int:
    if not os.path.exists(path):
        raise UnetguiError(f"{path}: no such file or folder")
    if os.path.isfile(path) and is_nifti(path):
        show(nifti.describe(path))  # the header only: info never reads the voxels
        return 0
    if os.path.isfile(path) and nrrd.is_nrrd(path):
        show(nrrd.describe(path))
        return 0
    if os.path.isfile(path) and path.lower().endswith(".unetgui"):
        from unetgui.tasks import models  # torch: only for model files

        show(models.describe(models.load(path)))
        return 0
    result = scan(path, ProgressLine("scanning"))
    _print_scan(result)
    return 0 if result.series else 1


def _print_scan(result: ScanResult) -> None:
    print(f"{len(result.series)} series in {result.files_seen} file(s)")
    for i, s in enumerate(result.series, start=1):
        row = s.summary()
        show(f"{i:3d}. {row['modality']:<3} {row['slices']:>4} slices  {row['size']:>11}  {row['spacing_mm']:<22} "
              f"{row['date']:<8}  {row['description'] or '(no description)'}")
        show(f"     patient: {row['patient'] or '(none)'}   key: {s.key}")
        for note in s.notes:
            show(f"     note: {note}")
    for seg in result.segmentations:
        from unetgui.formats.dicom_seg import describe_segments  # highdicom: only when there is a segmentation

        show(f"DICOM-SEG: {seg.path} (on series {seg.referenced_series_uid or 'unknown'})")
        try:
            lines = describe_segments(seg.path)
        except FormatError as exc:
            lines = [f"note: {exc}"]
        for line in lines:
            show(f"     {line}")
    if result.skipped:
        print(result.skipped_summary())


def _convert(source: str, output: str, series_key: str | None) -> int:
    if not is_nifti(output):
        raise UnetguiError(f"{output}: the output must end in .nii or .nii.gz")
    if not os.path.exists(source):
        raise UnetguiError(f"{source}: no such file or folder")
    result = scan(source, ProgressLine("scanning"))
    if not result.series:
        raise UnetguiError(f"{source}: no DICOM image series found ({result.skipped_summary() or 'no files'})")
    if series_key is None and len(result.series) > 1:
        _print_scan(result)
        raise UnetguiError(f"{source} holds {len(result.series)} series: choose one with --series")
    series = result.find(series_key) if series_key else result.series[0]
    volume = load_series(series, ProgressLine("loading"))
    for w in volume.warnings:
        warn([w])
    nifti.write_image(volume, output)
    z, y, x = volume.shape
    sz, sy, sx = volume.spacing
    print(f"wrote {output}: {x} x {y} x {z} voxels of {sx:.4g} x {sy:.4g} x {sz:.4g} mm ({volume.voxels.dtype})")
    return 0
