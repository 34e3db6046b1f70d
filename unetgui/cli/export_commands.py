"""``unetgui export``: labels with their image as PNG slices, overlays, NIfTI, .seg.nrrd, DICOM-SEG and a metrics CSV.

No torch: the export is :mod:`unetgui.formats.export`. File names never contain patient data unless
``--include-patient-id`` (then the PatientID only).
"""

from __future__ import annotations

import argparse

from unetgui.cli.common import command, open_image_with_labels, warn
from unetgui.cli.progress import ProgressLine
from unetgui.core.errors import UnetguiError
from unetgui.core.annotation import label_file_training_labels, provenance
from unetgui.formats.export import ExportOptions, dicom_seg_problem, export
from unetgui.formats.inputs import ImageInput
from unetgui.formats.mesh import MAX_DECIMATE, MAX_SMOOTHING, MESH_FORMATS, SMOOTHING, SPACES

_FORMAT_FLAGS = ("png", "overlay", "nifti", "image_nifti", "seg_nrrd", "dicom_seg", "metrics", "annotation", "mesh")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    cmd = command(sub, "export", "export labels with their image (PNG slices, overlays, NIfTI, 3D Slicer .seg.nrrd, "
                  "DICOM-SEG, metrics CSV) into a folder, named without patient data", [
                      "unetgui export --input ct/ --labels liver.nii.gz --output out/ --nifti --dicom-seg",
                      "unetgui export --project ~/liver-study --output out/ --model current",
                      "unetgui export --input ct/ --labels liver.nii.gz --output out/ --mesh stl --mesh-space LPS"],
                  description="Without format flags: label PNGs, NIfTI labels and the metrics CSV, plus a DICOM-SEG "
                  "when the input is a DICOM series. Written paths are printed one per line.")
    cmd.add_argument("--input",
                     help="DICOM series folder, NIfTI or NRRD file (.nrrd, .nhdr) or folder of 2-D images")
    cmd.add_argument("--series", help="series key, SeriesInstanceUID or number (when the folder holds several); "
                     "with --project: the project's series id (s1, s2, ...; default: every series)")
    cmd.add_argument("--labels", help="NIfTI or NRRD label volume on the image grid, 3D Slicer segmentation "
                     "(.seg.nrrd), DICOM-SEG (.dcm) or folder of masks")
    cmd.add_argument("--project", help="a unetgui project folder: exports its series with their saved labels "
                     "(and its current model with --model current)")
    cmd.add_argument("--output", required=True, help="folder to write into (created if missing)")
    cmd.add_argument("--png", action="store_true", help="one label PNG per slice (values 0..K)")
    cmd.add_argument("--overlay", action="store_true", help="colour overlay PNG per slice")
    cmd.add_argument("--nifti", action="store_true", help="<name>_labels.nii.gz on the image grid")
    cmd.add_argument("--image-nifti", action="store_true", help="the image as <name>_image.nii.gz")
    cmd.add_argument("--seg-nrrd", action="store_true", help="<name>_labels.seg.nrrd: a 3D Slicer segmentation, "
                     "one segment per label, on the image grid")
    cmd.add_argument("--dicom-seg", action="store_true", help="<name>_seg.dcm (DICOM input only)")
    cmd.add_argument("--metrics", action="store_true", help="<name>_metrics.csv: the segment statistics (as "
                     "unetgui stats: volume, surface, intensity, extent, pieces, area per slice) per label")
    cmd.add_argument("--mesh", choices=MESH_FORMATS, help="a closed surface mesh per label in world mm, "
                     "<name>_mesh/<name>_<value>_<label>.stl|obj|ply, with <name>_meshes.json (settings)")
    cmd.add_argument("--mesh-space", choices=SPACES, default="LPS", help="the meshes' coordinate system (default "
                     "LPS, what 3D Slicer assumes for STL and OBJ; stated in each file)")
    cmd.add_argument("--mesh-smoothing", type=int, default=SMOOTHING, metavar="N",
                     help=f"Taubin smoothing iterations (default {SMOOTHING}; 0: the raw voxel surface)")
    cmd.add_argument("--mesh-decimate", type=float, default=0.0, metavar="SHARE",
                     help=f"share of triangles to remove, 0..{MAX_DECIMATE} (default 0); kept undecimated where "
                     "decimating would open the surface")
    cmd.add_argument("--annotation", action="store_true", help="<name>_annotation.nii.gz: what was annotated (the "
                     "reviewed slices and strokes of a project; a label file's annotation), 255 elsewhere")
    cmd.add_argument("--model", help="model file to copy alongside as <name>_model.unetgui (with --project: "
                     "'current' for the project's current model)")
    cmd.add_argument("--include-patient-id", action="store_true", help="put the PatientID into the file names")
    cmd.add_argument("--overwrite", action="store_true", help="replace the files of an earlier export with the "
                     "same names (without it, an export into a folder that holds them writes nothing)")
    cmd.set_defaults(run=_export)


def _export(args: argparse.Namespace) -> int:
    if args.project:
        if args.input or args.labels:
            raise UnetguiError("give either --project, or --input with --labels")
        return _export_project(args)
    if not (args.input and args.labels):
        raise UnetguiError("give --input and --labels (or --project)")
    image, labels = open_image_with_labels(args.input, args.series, args.labels)
    options = _options(args, image, labels)
    _check_model(args.model)
    annotation = label_file_training_labels(labels.labels) if options.annotation else None
    paths = export(image.volume, labels, args.output, options, ProgressLine("exporting"), model_path=args.model,
                   annotation=annotation)
    print("\n".join(paths))
    return 0


def _check_model(path: str | None) -> None:
    """A model file is read (and so validated) before it is copied into an export."""
    if path is not None:
        from unetgui.tasks import models

        models.load(path)


def _export_project(args: argparse.Namespace) -> int:
    """Every series of a project (or ``--series``) with its saved labels (journal included), each into
    its own subfolder named by series (``s1``, ...): names from different series never collide."""
    import os

    from unetgui.core.volume import LabelMap, without_unannotated
    from unetgui.project.store import Project

    project = Project.open(args.project)
    entries = [project.find_series(args.series)] if args.series else project.series
    if not entries:
        raise UnetguiError(f"{args.project}: the project has no series")
    model = project.model_path(project.current_model) if args.model == "current" and project.current_model else args.model
    if args.model == "current" and not project.current_model:
        raise UnetguiError(f"{args.project}: the project has no model yet")
    _check_model(model)
    for entry in entries:
        saved = project.read_labels(entry.id)
        if saved is None:
            warn([f"series {entry.id} has no labels yet: skipped"])
            continue
        if saved.note:
            warn([f"series {entry.id}: {saved.note}"])
        image = ImageInput(project.source_path(entry), project.load_image(entry, ProgressLine("reading")), entry.kind)
        labels = LabelMap(without_unannotated(saved.labels),
                          image.volume.affine.copy(), project.table)
        options = _options(args, image, labels)
        annotation = saved.annotation() if options.annotation else None
        paths = export(image.volume, labels, os.path.join(args.output, entry.id), options, ProgressLine("exporting"),
                       model_path=model, provenance=provenance(saved.reviewed, *saved.planes, saved.predicted, saved.annotated),
                       annotation=annotation)
        print("\n".join(paths))
    return 0


def _options(args: argparse.Namespace, image: ImageInput, labels) -> ExportOptions:
    if not 0 <= args.mesh_smoothing <= MAX_SMOOTHING:
        raise UnetguiError(f"--mesh-smoothing must be 0..{MAX_SMOOTHING} iterations, got {args.mesh_smoothing}")
    if not 0 <= args.mesh_decimate <= MAX_DECIMATE:
        raise UnetguiError(f"--mesh-decimate must be 0..{MAX_DECIMATE}, got {args.mesh_decimate}")
    if any(getattr(args, flag) for flag in _FORMAT_FLAGS):
        return ExportOptions(label_png=args.png, overlay_png=args.overlay, nifti=args.nifti,
                             image_nifti=args.image_nifti, seg_nrrd=args.seg_nrrd, dicom_seg=args.dicom_seg,
                             metrics_csv=args.metrics, annotation=args.annotation, mesh=args.mesh or "",
                             mesh_space=args.mesh_space, mesh_smoothing=args.mesh_smoothing,
                             mesh_decimate=args.mesh_decimate, include_patient_id=args.include_patient_id, overwrite=args.overwrite)
    seg = image.kind == "dicom"
    if seg and (problem := dicom_seg_problem(image.volume, labels)):
        warn([f"DICOM-SEG skipped: {problem}"])
        seg = False
    return ExportOptions(dicom_seg=seg, include_patient_id=args.include_patient_id, overwrite=args.overwrite)
