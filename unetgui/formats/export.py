"""Export a label map with its image: label PNGs, overlay PNGs, NIfTI, .seg.nrrd, DICOM-SEG, a metrics CSV, the model.

Everything lands in one folder, under a base name built from the series (:func:`export_basename`):

* ``<name>_labels/<name>_0001.png ...``: one 8-bit grayscale PNG per slice, pixel value = label value
  0..K; array slice ``z`` (0-based) is file number ``z + 1``, zero-padded to 4 digits or more.
* ``<name>_overlay/<name>_0001.png ...``: RGB, the slice windowed to 8 bits (CT: W400/L40 HU; other
  modalities: the volume's 1st-99th percentile) with each label's colour blended at 40 % and its outline
  drawn opaque.
* ``<name>_labels.nii.gz``: uint8 label volume on the source grid (sform = the image affine, RAS mm), with
  its label names and colours next to it as ``<name>_labels.itksnap.txt`` (ITK-SNAP label description) and
  ``<name>_labels.ctbl`` (3D Slicer colour table); unetgui's NIfTI import reads the names back from them.
* ``<name>_labels.seg.nrrd``: a 3D Slicer segmentation on the source grid, one segment per label (optional).
* ``<name>_image.nii.gz``: the image itself (optional).
* ``<name>_annotation.nii.gz``: what the user annotated, 255 elsewhere ("not annotated": a sparse annotation
  as nnU-Net's ignore label, MONAI and unetgui read it), uint8 on the source grid (optional). Reopened in
  unetgui (File > Open labels) it annotates exactly these voxels again.
* ``<name>_seg.dcm``: BINARY DICOM-SEG referencing the source series (DICOM input only).
* ``<name>_mesh/<name>_<value>_<label>.stl|obj|ply``: a closed surface mesh per label in world mm, LPS or RAS
  (stated in each file), with ``<name>_meshes.json`` recording the coordinate system and the smoothing and
  decimation settings (formats/mesh.py; optional).
* ``<name>_metrics.csv``: the table below.
* ``<name>_model.unetgui``: a copy of the model that made the labels (when one is given).

The value 255 ("not annotated") reaches no exported file but the annotation NIfTI: it is written as 0
(background) in the PNGs, the NIfTI, the .seg.nrrd and the SEG, and is counted in no label row of the CSV.

CSV layout (UTF-8, comma separated, CRLF line ends as RFC 4180, one header row, readable with
``csv.DictReader`` or pandas; text cells starting with ``= + - @``, a tab or a CR get a leading apostrophe so
that spreadsheets show them instead of running them, see core/csvcell.py)::

    section,set,label,name,voxels,volume_mm3,volume_ml,surface_mm2,mean,std,...,slices_with_label,first_slice,
    last_slice,slice,area_mm2,dice,iou,hd95_mm,volume_pred_ml,volume_truth_ml

* ``section=labels`` and ``section=slice_area``: the segment statistics, written by formats/statistics.py
  (the one writer of ``unetgui stats`` and the app's Statistics dock; core/statistics.py defines each
  number): one row per label of the table and per other value present, counted in the exported labels
  (``volume_ml`` = voxels x voxel volume (``|det|`` of the affine, mm^3) / 1000, ``first_slice``/``last_slice``
  1-based like the PNG names, empty when the label is absent), then the area of each slice a label is on.
* ``section=evaluation``: one row per dict of ``evaluation`` (e.g. ``LabelMetrics.to_json()`` plus
  ``"set"``): ``set``, ``label``, ``name``, ``dice``, ``iou``, ``hd95_mm`` (empty when undefined:
  exactly one of prediction and truth is empty), ``volume_pred_ml``, ``volume_truth_ml``. Other keys
  become extra columns after these.

Writing is all or nothing: every file is first written under a hidden temporary name in its final
folder (flushed and fsynced); only when all are written are they renamed into place with
``os.replace``. A failure or a cancel removes the temporary files (and the folders this export
created), so an existing export is not left half overwritten (unless a rename in the final step
itself fails, e.g. the drive is unplugged).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pydicom
from scipy import ndimage

from unetgui.core import atomic, csvcell
from unetgui.core.errors import FormatError, GeometryError
from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core.textsafe import one_line
from unetgui.core.volume import UNANNOTATED, LabelMap, LabelTable, SeriesInfo, Volume, default_color, without_unannotated
from unetgui.formats import label_tables, nifti, nrrd, png, statistics
from unetgui.formats import mesh as surfaces
from unetgui.formats.dicom_seg import write_dicom_seg
from unetgui.formats.statistics import label_statistics

CT_WINDOW = (40.0, 400.0)  # level, width in HU (abdomen)
OVERLAY_ALPHA = 0.4
EVALUATION_COLUMNS = ("dice", "iou", "hd95_mm", "volume_pred_ml", "volume_truth_ml")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ExportOptions:
    """Which outputs :func:`export` writes (see the module docstring for names and contents)."""

    label_png: bool = True
    overlay_png: bool = False
    nifti: bool = True
    image_nifti: bool = False
    dicom_seg: bool = False
    seg_nrrd: bool = False  # 3D Slicer segmentation
    annotation: bool = False  # the annotation mask as a 255-encoded NIfTI
    metrics_csv: bool = True
    mesh: str = ""  # "stl", "obj" or "ply": a surface mesh per label (formats/mesh.py); "": none
    mesh_space: str = "LPS"  # the meshes' coordinate system: "LPS" (what 3D Slicer assumes for STL) or "RAS"
    mesh_smoothing: int = surfaces.SMOOTHING  # Taubin iterations (0: the raw voxel surface)
    mesh_decimate: float = 0.0  # share of triangles removed (0..0.95)
    include_patient_id: bool = False  # only then may file names contain the (sanitized) PatientID
    overwrite: bool = False  # replace the files of an earlier export with the same names


class ExportExists(FormatError):
    """The folder already holds files with the names this export writes (and ``overwrite`` is off)."""

    def __init__(self, folder: str, paths: list[str]) -> None:
        names = sorted({os.path.relpath(p, folder).split(os.sep)[0] for p in paths})
        super().__init__(f"{folder} already holds an export with these names ({', '.join(names[:3])}"
                         f"{', ...' if len(names) > 3 else ''}; {len(paths)} file(s)): nothing was written. Choose "
                         "another folder, or replace them (--overwrite)")
        self.paths = paths


@dataclass(frozen=True)
class _Job:
    path: str
    write: Callable[[str], None]  # writes the file's content to the temporary path it is given
    message: str


def export_basename(volume: Volume, include_patient_id: bool = False) -> str:
    """File-name stem from modality, SeriesNumber, SeriesDescription and a short hash of the
    SeriesInstanceUID, e.g. ``CT_s3_abdomen_1a2b3c``: two series of one study that share number and
    description (a re-scan, two studies of one patient) get different names.

    Only ``[A-Za-z0-9_-]``. Never the patient's name or birth date; the PatientID only when
    ``include_patient_id``. A description that mentions the patient's name or ID is left out.
    """
    info = volume.info
    parts = [_safe(info.patient_id)] if include_patient_id else []
    modality = _safe(volume.modality, 8)
    number = _safe(info.series_number, 12)
    description = "" if _mentions_patient(info.series_description, info) else _safe(info.series_description)
    if modality and number == "" and description.casefold().split("_")[0] == modality.casefold():
        modality = ""  # "CT Body 3.0" names itself: CT_Body_3_0_..., not CT_CT_Body_3_0_...
    parts.append(modality)
    parts += [f"s{number}" if number else "", description]
    if not number and not description:
        parts.append("image")
    if info.series_uid:
        parts.append(hashlib.sha256(info.series_uid.encode()).hexdigest()[:6])
    return "_".join(p for p in parts if p)


def _safe(text: str, limit: int = 48) -> str:
    return _UNSAFE.sub("_", text or "").strip("_-")[:limit].strip("_-")


def _alnum(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def _mentions_patient(text: str, info: SeriesInfo) -> bool:
    """True when ``text`` contains a part (2+ characters) of the patient's name or their ID."""
    parts = re.split(r"[\^=,\s]+", info.patient_name or "") + [info.patient_id or ""]
    needle = _alnum(text or "")
    return any(len(p) >= 2 and p in needle for p in map(_alnum, parts))


def dicom_seg_problem(volume: Volume, labels: LabelMap | None = None) -> str | None:
    """Why a DICOM-SEG cannot be written for ``volume`` (and ``labels``), or ``None`` when it can."""
    first = next((s for s in volume.sources if s is not None and s.sop_instance_uid), None)
    if first is None:
        return ("DICOM-SEG export needs an image loaded from a DICOM series (it references the source "
                "images); this image has no DICOM source: export NIfTI or PNG instead")
    try:  # one header tells an anonymised series (blank UIDs in the data set) before anything is written
        header = pydicom.dcmread(first.path, stop_before_pixels=True, specific_tags=["SOPInstanceUID", "SOPClassUID"])
    except Exception as exc:
        return f"DICOM-SEG export needs the source DICOM files, and {first.path} cannot be read ({exc})"
    if not header.get("SOPInstanceUID") or not header.get("SOPClassUID"):
        return ("DICOM-SEG export needs the source images' SOP instance UIDs; this series has blank UIDs "
                "(anonymised), so a segmentation could not reference it: export NIfTI or PNG instead")
    if labels is not None and not len(labels.table) and not labels.used_values():
        return "DICOM-SEG export needs at least one label; this label map is empty"
    return None


def export(volume: Volume, labels: LabelMap, folder: str, options: ExportOptions, progress: ProgressFn | None = None,
           cancel: CancelToken | None = None, evaluation: list[dict] | None = None,
           model_path: str | None = None, provenance: tuple[np.ndarray, np.ndarray | bool] | None = None,
           annotation: np.ndarray | None = None) -> list[str]:
    """Write the outputs chosen in ``options`` into ``folder`` (created if missing); return their paths.

    ``annotation``: the user's annotation, uint8 on the grid with 255 where not annotated (needed for
    ``options.annotation``).

    ``provenance``: ``(edited, model_made)`` per axial slice, the slices the user drew or corrected and those a
    model wrote (see :func:`~unetgui.formats.dicom_seg.write_dicom_seg`: each DICOM-SEG segment's algorithm
    type); None: unknown.

    ``labels`` must lie on ``volume``'s grid. Progress is reported once per file (each PNG slice is a
    file); ``cancel`` is checked between files and raises :class:`~unetgui.core.errors.Cancelled`,
    leaving no temporary file behind. Raises :class:`FormatError` (a DICOM-SEG asked for a volume
    without DICOM source, a missing model file, an unwritable folder) before writing anything where
    it can be known in advance.
    """
    if not labels.fits(volume):
        raise GeometryError(f"the labels ({labels.shape}) are not on the image grid ({volume.shape}): "
                            "nothing was exported")
    if options.dicom_seg and (problem := dicom_seg_problem(volume, labels)):
        raise FormatError(problem)
    if options.annotation and (annotation is None or np.shape(annotation) != volume.shape):
        raise FormatError("no annotation on the image grid to export")
    if model_path is not None and not os.path.isfile(model_path):
        raise FormatError(f"{model_path}: the model file does not exist")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise FormatError(f"{folder}: exists and is not a folder")
    name = export_basename(volume, options.include_patient_id)
    clean = without_unannotated(labels.labels)
    exported = LabelMap(clean, volume.affine.copy(), labels.table)
    jobs = _plan(volume, exported, folder, name, options, evaluation, model_path, provenance)
    if options.annotation:
        marks = LabelMap(np.asarray(annotation, np.uint8), volume.affine.copy(), labels.table)
        jobs.append(_Job(os.path.join(folder, f"{name}_annotation.nii.gz"), lambda tmp: nifti.write_labels(marks, tmp, annotation=True),
                         "annotation NIfTI"))
    if not jobs:
        raise FormatError("nothing to export: choose at least one output")
    _check_targets([j.path for j in jobs], folder, options.overwrite)
    created = _make_folders([folder] + sorted({os.path.dirname(j.path) for j in jobs} - {folder}))
    staged: list[tuple[str, str]] = []
    try:
        report(progress, 0, len(jobs), "exporting")
        for done, job in enumerate(jobs, start=1):
            check(cancel)
            staged.append((atomic.temp_path(job.path), job.path))
            _write_synced(job, staged[-1][0])
            report(progress, done, len(jobs), job.message)
        check(cancel)
    except BaseException:
        _discard(staged, created)
        raise
    return _commit(staged, name)


def _plan(volume: Volume, labels: LabelMap, folder: str, name: str, options: ExportOptions,
          evaluation: list[dict] | None, model_path: str | None,
          provenance: tuple[np.ndarray, np.ndarray | bool] | None = None) -> list[_Job]:
    """The files to write, cheapest to fail first (the SEG re-reads the source files)."""
    base = os.path.join(folder, name)
    jobs: list[_Job] = []
    if options.dicom_seg:
        edited, made = provenance if provenance is not None else (None, None)
        jobs.append(_Job(f"{base}_seg.dcm", lambda tmp: write_dicom_seg(labels, volume, tmp, edited=edited, model_made=made),
                         "DICOM-SEG"))
    if options.nifti:
        path = f"{base}_labels.nii.gz"
        jobs.append(_Job(path, lambda tmp: nifti.write_labels(labels, tmp), "NIfTI labels"))
        table = nifti.name_labels(labels.labels, labels.table)
        itk, ctbl = label_tables.table_paths(path)
        itk_text, ctbl_text = label_tables.itksnap_text(table), label_tables.slicer_text(table, os.path.basename(ctbl))
        jobs.append(_Job(itk, lambda tmp: _write_bytes(tmp, itk_text.encode()), "ITK-SNAP label description"))
        jobs.append(_Job(ctbl, lambda tmp: _write_bytes(tmp, ctbl_text.encode()), "Slicer colour table"))
    if options.seg_nrrd:
        jobs.append(_Job(f"{base}_labels.seg.nrrd", lambda tmp: nrrd.write_segmentation(labels, tmp), "Slicer segmentation"))
    if options.image_nifti:
        jobs.append(_Job(f"{base}_image.nii.gz", lambda tmp: nifti.write_image(volume, tmp), "NIfTI image"))
    built: dict[int, float] = {}  # the mesh files' surface areas, which the metrics CSV reuses
    if options.mesh:
        jobs += _mesh_jobs(labels, folder, name, options, built)
    if options.metrics_csv:
        def mesh_area(value: int, mask: np.ndarray) -> float:  # the mesh file's surface: not built twice
            return built[value] if value in built else surfaces.surface(mask, labels.affine).area()

        same = options.mesh and options.mesh_smoothing == surfaces.SMOOTHING and not options.mesh_decimate
        area = mesh_area if same else None

        def write_metrics(tmp: str) -> None:  # after the meshes
            stats = label_statistics(volume, labels, area=area)
            _write_bytes(tmp, metrics_csv(volume, labels, evaluation, stats).encode("utf-8"))
        jobs.append(_Job(f"{base}_metrics.csv", write_metrics, "metrics CSV"))
    if model_path is not None:
        jobs.append(_Job(f"{base}_model.unetgui", lambda tmp: shutil.copyfile(model_path, tmp), "model"))
    n = labels.shape[0]
    digits = max(4, len(str(n)))
    if options.label_png:
        sub = os.path.join(folder, f"{name}_labels")
        jobs += [_Job(os.path.join(sub, f"{name}_{z + 1:0{digits}d}.png"), _label_png_writer(labels.labels, z),
                      f"label PNG {z + 1}/{n}") for z in range(n)]
    if options.overlay_png:
        sub = os.path.join(folder, f"{name}_overlay")
        window = _window(volume)
        lut = _color_lut(labels.table)
        jobs += [_Job(os.path.join(sub, f"{name}_{z + 1:0{digits}d}.png"),
                      _overlay_writer(volume.voxels, labels.labels, z, window, lut), f"overlay PNG {z + 1}/{n}")
                 for z in range(n)]
    return jobs


def _mesh_jobs(labels: LabelMap, folder: str, name: str, options: ExportOptions,
               built: dict[int, float]) -> list[_Job]:
    """One mesh file per label present, then ``<name>_meshes.json``: how they were made (coordinate system,
    unit, smoothing, decimation) and what each holds (triangles, closed, a note such as a refused decimation).
    ``built`` receives each label's surface area (the meshes themselves are not kept)."""
    if options.mesh not in surfaces.MESH_FORMATS:
        raise FormatError(f"mesh format must be one of {', '.join(surfaces.MESH_FORMATS)}, got {options.mesh!r}")
    if options.mesh_space not in surfaces.SPACES:
        raise FormatError(f"mesh coordinate system must be one of {', '.join(surfaces.SPACES)}, got {options.mesh_space!r}")
    sub = os.path.join(folder, f"{name}_mesh")
    boxes = ndimage.find_objects(labels.labels)  # each label's box: its surface kept inside it, as the dock's
    present = [v for v, box in enumerate(boxes, start=1) if box is not None and v < UNANNOTATED]
    made: list[dict] = []
    jobs = []
    for value in present:
        label = labels.table.get(value)
        label_name = label.name if label else f"Label {value}"
        path = os.path.join(sub, f"{name}_{value}_{_safe(label_name) or 'label'}.{options.mesh}")

        def write(tmp: str, value=value, label_name=label_name, path=path) -> None:
            box = boxes[value - 1]
            m = surfaces.surface(labels.labels[box] == value, labels.affine, options.mesh_smoothing,
                                 options.mesh_decimate, origin=tuple(b.start for b in box))
            built[value] = m.area()
            surfaces.write(m, tmp, options.mesh, options.mesh_space, label_name)
            made.append({"file": os.path.basename(path), "label": value, "name": one_line(label_name),
                         "triangles": len(m.faces), "closed": m.closed(), "area_mm2": m.area(), "note": m.note,
                         **m.settings})
        jobs.append(_Job(path, write, f"{options.mesh.upper()} mesh of {one_line(label_name)}"))
    if not jobs:
        raise FormatError("no label to make a mesh of: the labels are empty")

    def manifest(tmp: str) -> None:
        text = json.dumps({"format": options.mesh, "coordinate_system": options.mesh_space, "unit": "mm",
                           "smoothing_iterations": options.mesh_smoothing, "decimation": options.mesh_decimate,
                           "meshes": made}, indent=1)
        _write_bytes(tmp, (text + "\n").encode("utf-8"))
    jobs.append(_Job(os.path.join(sub, f"{name}_meshes.json"), manifest, "mesh settings"))
    return jobs


def _label_png_writer(labels: np.ndarray, z: int) -> Callable[[str], None]:
    return lambda tmp: png.write_label_pngs(labels[z:z + 1], os.path.dirname(tmp), names=[os.path.basename(tmp)])


def _overlay_writer(voxels: np.ndarray, labels: np.ndarray, z: int, window: tuple[float, float],
                    lut: np.ndarray) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        rgb = overlay_rgb(voxels[z], labels[z], window, lut)
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise FormatError(f"cannot encode overlay slice {z + 1} as PNG")
        _write_bytes(tmp, encoded.tobytes())
    return write


def _window(volume: Volume) -> tuple[float, float]:
    """(low, high) display range: CT abdomen window, else the 1st-99th percentile of the volume."""
    if volume.modality.upper() == "CT":
        level, width = CT_WINDOW
        return level - width / 2, level + width / 2
    sample = volume.voxels[:, ::4, ::4].astype(np.float32)  # a subsample is enough for percentiles
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(sample, [1, 99]))
    return low, high if high > low else low + 1.0


def _color_lut(table: LabelTable) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    for value in range(1, UNANNOTATED):
        label = table.get(value)
        lut[value] = label.color if label else default_color(value)
    return lut


def overlay_rgb(image: np.ndarray, labels: np.ndarray, window: tuple[float, float], lut: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(y, x, 3)``: ``image`` windowed to ``window`` (low, high), labels blended and outlined.

    ``labels`` is one slice ``(y, x)`` (0 and 255 draw nothing); ``lut`` maps a value to its RGB colour.
    """
    low, high = window
    gray = np.clip((image.astype(np.float32) - low) * (255.0 / (high - low)), 0, 255)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    mask = (labels > 0) & (labels != UNANNOTATED)
    colors = lut[labels].astype(np.float32)
    rgb[mask] = (1 - OVERLAY_ALPHA) * rgb[mask] + OVERLAY_ALPHA * colors[mask]
    edge = np.zeros(labels.shape, bool)  # a labelled pixel with a 4-neighbour of another value
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge &= mask
    rgb[edge] = colors[edge]
    return np.round(rgb).astype(np.uint8)


def metrics_csv(volume: Volume, labels: LabelMap, evaluation: list[dict] | None = None,
                stats: list | None = None) -> str:
    """The CSV text described in the module docstring (``labels`` without 255, on ``volume``'s grid):
    the statistics of formats/statistics.py (``stats``, measured here when None), then the evaluation rows."""
    if stats is None:
        stats = label_statistics(volume, labels)
    rows = statistics.rows(stats)
    columns = list(statistics.TABLE_COLUMNS)
    columns.insert(1, "set")
    columns += [c for c in EVALUATION_COLUMNS if c not in columns]
    for item in evaluation or []:
        row = {k: v for k, v in item.items() if k != "hd95_defined"}
        if item.get("hd95_defined") is False:
            row["hd95_mm"] = None
        if "name" not in row:
            label = labels.table.get(row["label"]) if isinstance(row.get("label"), int) else None
            row["name"] = label.name if label else ""
        row["section"] = "evaluation"
        columns += [k for k in row if k not in columns]
        rows.append(row)
    # names come from files (label tables, segmentations): one line each, so that a name cannot end a row or
    # carry an escape sequence into a terminal that shows the CSV (csvcell then defuses formulas)
    rows = [{k: one_line(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]
    return csvcell.table_text([one_line(c) for c in columns], rows)


def _check_targets(paths: list[str], folder: str, overwrite: bool) -> None:
    """Before anything is written: no target is a folder or sits under a file (the renames at the end
    could not all succeed), and no earlier file is replaced unless asked."""
    for path in paths:
        if os.path.isdir(path):
            raise FormatError(f"{path} is a folder: the export cannot put a file there; move it away")
        parent = os.path.dirname(path)
        if parent != folder and os.path.exists(parent) and not os.path.isdir(parent):
            raise FormatError(f"{parent} is a file: the export needs a folder there; move it away")
    existing = [p for p in paths if os.path.lexists(p)]
    if existing and not overwrite:
        raise ExportExists(folder, existing)


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _write_synced(job: _Job, tmp: str) -> None:
    try:
        job.write(tmp)
        atomic.fsync_file(tmp)
    except OSError as exc:
        raise FormatError(f"cannot write {job.path}: {exc}") from exc


def _make_folders(folders: list[str]) -> list[str]:
    """Create missing folders; return those created (to remove them again if the export fails)."""
    created: list[str] = []
    for folder in folders:
        missing, parent = [], os.path.abspath(folder)
        while not os.path.exists(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        if not missing:
            continue
        try:
            os.makedirs(folder)
        except OSError as exc:
            _discard([], created)
            raise FormatError(f"cannot create the folder {folder}: {exc}") from exc
        created += reversed(missing)  # parents first
    return created


def _discard(staged: list[tuple[str, str]], created: list[str]) -> None:
    for tmp, _ in staged:
        atomic.remove_quietly(tmp)
    for folder in reversed(created):
        try:
            os.rmdir(folder)  # only if empty: never removes anything else
        except OSError:
            pass


def _commit(staged: list[tuple[str, str]], name: str) -> list[str]:
    """Rename every temporary file into place, drop stale slice PNGs of an earlier export, sync folders."""
    try:
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError as exc:
        _discard(staged, [])
        raise FormatError(f"cannot move the exported files into place: {exc}") from exc
    paths = [path for _, path in staged]
    folders = {os.path.dirname(p) for p in paths}
    slice_name = re.compile(rf"^{re.escape(name)}_\d{{4,}}\.png$")
    for folder in folders:
        if os.path.basename(folder) in (f"{name}_labels", f"{name}_overlay"):
            # an earlier export with more slices left files this one does not overwrite
            for stale in set(os.listdir(folder)) - {os.path.basename(p) for p in paths}:
                if slice_name.match(stale):
                    try:
                        os.remove(os.path.join(folder, stale))
                    except OSError:
                        pass  # best effort: the new export itself is complete
        atomic.fsync_dir(folder)
    return paths
