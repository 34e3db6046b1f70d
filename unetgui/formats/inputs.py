"""Open what a user points at: a DICOM folder, a NIfTI or NRRD file, or a folder of 2-D images; and its labels.

Used by the CLI (and later the GUI) so that every command accepts the same kinds of input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from unetgui.core.errors import FormatError
from unetgui.core.progress import ProgressFn
from unetgui.core.volume import Label, LabelMap, LabelTable, Volume, default_color
from unetgui.formats import nifti, nrrd, png
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom_seg import read_dicom_seg

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class ImageInput:
    """An opened image: the volume, and the slice file names for 2-D image folders (else empty)."""

    path: str
    volume: Volume
    kind: str  # "dicom", "nifti", "nrrd" or "images"
    slice_names: tuple[str, ...] = ()


def is_nifti(path: str) -> bool:
    return path.lower().endswith(NIFTI_SUFFIXES)


def open_image(path: str, series: str | None = None, progress: ProgressFn | None = None) -> ImageInput:
    """Open ``path``; a DICOM folder with several series needs ``series`` (key, UID or number)."""
    if not os.path.exists(path):
        raise FormatError(f"{path}: no such file or folder")
    if os.path.isfile(path) and is_nifti(path):
        return ImageInput(path, nifti.read_image(path), "nifti")
    if os.path.isfile(path) and nrrd.is_nrrd(path):
        return ImageInput(path, nrrd.read_image(path), "nrrd")
    if os.path.isdir(path) and png.list_images(path):
        volume, names = png.read_image_folder(path)
        return ImageInput(path, volume, "images", tuple(names))
    result = scan(path, progress)
    if not result.series:
        raise FormatError(f"{path}: no DICOM image series, NIfTI or NRRD file or 2-D images found "
                          f"({result.skipped_summary() or 'empty'})")
    if series is None and len(result.series) > 1:
        listing = "; ".join(f"{i}. {s.modality} {s.slice_count} slices {s.first.series_description!r} key {s.key}"
                            for i, s in enumerate(result.series, start=1))
        raise FormatError(f"{path} holds {len(result.series)} series, choose one: {listing}")
    chosen = result.find(series) if series else result.series[0]
    return ImageInput(path, load_series(chosen, progress), "dicom")


def open_labels(path: str, image: ImageInput, table: LabelTable | None = None) -> tuple[LabelMap, tuple[str, ...]]:
    """Labels for ``image``: a NIfTI or NRRD label volume on its grid, a 3D Slicer segmentation (.seg.nrrd), a
    DICOM-SEG (.dcm) of its series, or a folder of masks named like the image files. Returns the label map
    and warnings.

    ``table`` names the values it defines; other values take the names of a segmentation's segments, or of a
    table next to a NIfTI or NRRD file (:func:`unetgui.formats.label_tables.find_table`)."""
    if not os.path.exists(path):
        raise FormatError(f"{path}: no such file or folder")
    volume = image.volume
    if os.path.isfile(path) and is_nifti(path):
        return nifti.read_labels_noted(path, volume, table)
    if os.path.isfile(path) and nrrd.is_nrrd(path):
        return nrrd.read_labels(path, volume, table)
    if os.path.isfile(path) and path.lower().endswith(".dcm"):
        return read_dicom_seg(path, volume)
    if os.path.isdir(path):
        if image.kind != "images":
            raise FormatError(f"{path}: a folder of masks fits a folder of 2-D images; for {image.kind} input "
                              "give a NIfTI or NRRD label volume, a .seg.nrrd or a DICOM-SEG")
        masks = png.read_mask_folder(path, list(image.slice_names))
        if masks.shape != volume.shape:
            raise FormatError(f"{path}: masks are {masks.shape[1:]}, images {volume.shape[1:]}")
        present = [int(v) for v in np.unique(masks) if 0 < v < 255]
        base = table or LabelTable()
        for v in present:
            if base.get(v) is None:
                base = base.with_label(Label(v, f"Label {v}", default_color(v)))
        return LabelMap(masks, volume.affine.copy(), base), ()
    raise FormatError(f"{path}: labels must be a NIfTI or NRRD file (.seg.nrrd included), a DICOM-SEG .dcm file or "
                      "a folder of masks")
