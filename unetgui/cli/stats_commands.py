"""``unetgui stats``: the segment statistics of a label file on its image (tasks/stats.py), printed as a table and
written as CSV and JSON by formats/statistics.py, the one writer the export's metrics CSV and the app use."""

from __future__ import annotations

import argparse
import math

from unetgui.cli.common import add_series, command, open_image_with_labels, show
from unetgui.cli.outputs import check_writable
from unetgui.core import atomic
from unetgui.core.errors import UnetguiError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    cmd = command(sub, "stats", "segment statistics per label: volume (mm^3, mL), surface area, intensity inside "
                  "(mean, SD, min, max, median, 5th/95th percentile; HU for CT), the longest diameter on a slice and "
                  "the longest across it (RECIST), the 3-D maximum (Feret) diameter, extent, connected pieces and the "
                  "area of each slice", [
                      "unetgui stats --image ct/ --labels liver.nii.gz",
                      "unetgui stats --image ct.nii.gz --labels seg.dcm --csv liver.csv --json liver.json"],
                  description="Definitions follow 3D Slicer's Segment Statistics (docs/meshes.md says where "
                  "they differ). The CSV and JSON also hold each label's area per slice.")
    cmd.add_argument("--image", required=True, help="the image the labels belong to (DICOM folder, NIfTI, NRRD)")
    add_series(cmd, "--image")
    cmd.add_argument("--labels", required=True, help="label volume on the image grid (NIfTI, NRRD, 3D Slicer "
                     ".seg.nrrd, DICOM-SEG, folder of masks); 255 (not annotated) counts nowhere")
    cmd.add_argument("--csv", help="write the table (and the area per slice) to this CSV file")
    cmd.add_argument("--json", help="write the statistics to this JSON file")
    cmd.add_argument("--no-surface", action="store_true", help="skip the surface area (the one slow measure on "
                     "a large label)")
    cmd.set_defaults(run=_stats)


def _number(value, width: int, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f"{'':>{width}}"
    return f"{value:{width},.{digits}f}"


def _stats(args: argparse.Namespace) -> int:
    from unetgui.formats.statistics import csv_text, json_text
    from unetgui.tasks.stats import document_statistics

    for flag in ("csv", "json"):
        if getattr(args, flag):
            check_writable(getattr(args, flag), f"--{flag}")
    image, labels = open_image_with_labels(args.image, args.series, args.labels)
    stats = document_statistics(image.volume, labels, surface=not args.no_surface)
    if not stats:
        raise UnetguiError(f"{args.labels} holds no label")
    unit = stats[0].unit or "value"
    print(f"{'label':<20} {'voxels':>11} {'mL':>10} {'diameter mm':>13} {'surface mm2':>12} {'mean ' + unit:>10} "
          f"{'SD':>8} {'median':>8} {'extent x*y*z mm':>20} {'pieces':>6}")
    for s in stats:
        extent = "x".join(f"{e:.0f}" for e in s.extent_mm)
        diameter = f"{s.long_diameter_mm:.1f}x{s.short_diameter_mm:.1f}" if s.voxels else "-"
        show(f"{s.name[:20]:<20} {s.voxels:>11,} {_number(s.volume_ml, 10, 2)} {diameter:>13} "
             f"{_number(s.surface_mm2, 12)} {_number(s.mean, 10)} {_number(s.std, 8)} {_number(s.median, 8)} "
             f"{extent:>20} {s.components:>6}")
        if len(s.pieces) > 1:  # each lesion of a lesion label
            for p in s.pieces:
                name = f"  piece {p.piece} of {s.components}"
                diameter = f"{p.long_diameter_mm:.1f}x{p.short_diameter_mm:.1f}"
                show(f"{name:<20} {p.voxels:>11,} {_number(p.volume_ml, 10, 2)} {diameter:>13}  on slice "
                     f"{p.long_diameter_slice + 1}, Feret {p.feret_mm:.1f} mm")
            if s.components > len(s.pieces):
                show(f"  ({s.components - len(s.pieces)} smaller piece(s) not listed)")
    if args.csv:
        atomic.write_bytes(args.csv, csv_text(stats).encode("utf-8"))
    if args.json:
        atomic.write_bytes(args.json, json_text(stats, image.path).encode("utf-8"))
    return 0
