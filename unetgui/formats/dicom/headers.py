"""Header reading: one DICOM file -> a :class:`FileHeader` and its :class:`FrameRef` list (no pixels).

Single-frame files give one frame; Enhanced CT/MR multi-frame files give one frame per frame, with the
position, orientation, spacing and rescale taken from the per-frame or shared functional groups.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from unetgui.core import limits
from unetgui.core.errors import FormatError

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
#: transfer syntaxes whose pixel data is stored raw (empty: no file meta, read as implicit little endian)
_NATIVE_SYNTAXES = {"", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_DEFLATED = "1.2.840.10008.1.2.1.99"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

# files with these suffixes are never DICOM; skipping them avoids a forced parse of arbitrary bytes
_NOT_DICOM_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".txt", ".md", ".rst", ".json", ".xml",
    ".html", ".csv", ".nii", ".gz", ".nrrd", ".mha", ".mhd", ".bval", ".bvec", ".zip", ".pdf", ".py",
    ".dump", ".icc", ".ini", ".toml", ".yaml", ".yml",
}


@dataclass(frozen=True)
class FileHeader:
    """What one DICOM file says about its series and its pixel encoding."""

    path: str
    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    modality: str
    patient_name: str
    patient_id: str
    study_date: str
    series_description: str
    series_number: str
    rows: int
    columns: int
    samples_per_pixel: int
    photometric: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    transfer_syntax: str
    slice_thickness: float | None
    spacing_between_slices: float | None
    has_modality_lut: bool
    number_of_frames: int


@dataclass(frozen=True)
class FrameRef:
    """One 2-D image of a series: a single-frame file, or one frame of a multi-frame file."""

    file: FileHeader
    frame: int | None  # 0-based index in a multi-frame file, None for a single-frame file
    position: tuple[float, float, float] | None  # ImagePositionPatient, LPS mm
    orientation: tuple[float, ...] | None  # ImageOrientationPatient, 6 direction cosines
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) mm
    slope: float
    intercept: float
    temporal_key: tuple[float, ...]  # orders the images at one position in 4-D series
    instance_number: int

    @property
    def path(self) -> str:
        return self.file.path


def _get(ds: Any, name: str, default: Any = None) -> Any:
    """An element's value, or ``default`` when it is absent, empty or unparsable (e.g. IS '1A')."""
    try:
        value = ds.get(name, default) if ds is not None else default
    except Exception:  # pydicom raises various errors for malformed values
        return default
    return default if value is None or value == "" else value


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _spacing(value: Any) -> tuple[float, float] | None:
    """PixelSpacing, or None when absent or not positive (some CR/DX files store 0)."""
    out = _floats(value, 2)
    return out if out is not None and min(out) > 0 else None


def _orientation(value: Any) -> tuple[float, ...] | None:
    """ImageOrientationPatient, or None unless it is two (nearly) orthonormal direction cosines."""
    out = _floats(value, 6)
    if out is None:
        return None
    row, col = np.asarray(out[:3]), np.asarray(out[3:])
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(col) - 1) > 0.01 or abs(row @ col) > 0.01:
        return None
    return out


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


#: the most bytes a Deflated Explicit VR file may inflate to (pydicom inflates the whole dataset in memory)
MAX_INFLATED = limits.MAX_BYTES


def check_inflated_size(path: str) -> None:
    """A Deflated Explicit VR Little Endian file is inflated here first, in 1 MiB steps and without keeping the
    output, and refused when it grows past :data:`MAX_INFLATED`: pydicom would inflate all of it at once
    (deflate reaches 1:1032, so a 5 MB file can claim 5 GB). Other files: nothing to do."""
    try:
        with open(path, "rb") as f:
            pydicom.filereader.read_preamble(f, True)
            meta = pydicom.filereader._read_file_meta_info(f)
            if str(meta.get("TransferSyntaxUID", "")) != _DEFLATED:
                return
            unpack, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
            while chunk := f.read(1 << 20):
                data = unpack.decompress(chunk, 1 << 20)
                while True:
                    total += len(data)
                    if total > MAX_INFLATED:
                        raise FormatError(f"{os.path.basename(path)}: its deflated data inflates to more than "
                                          f"{MAX_INFLATED:,} bytes; unetgui does not open it")
                    if not unpack.unconsumed_tail:
                        break
                    data = unpack.decompress(unpack.unconsumed_tail, 1 << 20)
    except FormatError:
        raise
    except Exception:  # noqa: BLE001 - not DICOM, a broken meta or stream: pydicom's own reading says what is wrong
        return


def read_dataset(path: str, stop_before_pixels: bool = True) -> pydicom.Dataset | None:
    """Parse ``path`` as DICOM, also without preamble/meta; ``None`` if it is not DICOM at all.

    Raises whatever pydicom raises for a DICOM file that is broken beyond parsing, and FormatError for a
    deflated file that would inflate past the limits (:func:`check_inflated_size`).
    """
    if os.path.splitext(path)[1].lower() in _NOT_DICOM_SUFFIXES:
        return None
    check_inflated_size(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every odd value; we report what matters
        return _read_dataset(path, stop_before_pixels)


def _read_dataset(path: str, stop_before_pixels: bool) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass
    # no preamble or no file meta: accept only if a forced parse finds an image's basic elements
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
    except Exception:
        return None
    plausible = _int(_get(ds, "Rows"), 0) > 0 or bool(_get(ds, "SOPClassUID")) or bool(_get(ds, "Modality"))
    if not plausible or len(ds) < 3:
        return None
    return ds


def _first(groups: list[Any], sequence: str, name: str) -> Any:
    """``name`` from the first functional group (per-frame first, then shared) that has it."""
    for group in groups:
        item = _get(group, sequence)
        if item is not None and len(item) > 0:
            value = _get(item[0], name)
            if value is not None:
                return value
    return None


def file_header(ds: pydicom.Dataset, path: str) -> FileHeader:
    meta = getattr(ds, "file_meta", None)
    sop_class = str(_get(ds, "SOPClassUID", "") or _get(meta, "MediaStorageSOPClassUID", ""))
    sop_instance = str(_get(ds, "SOPInstanceUID", "") or _get(meta, "MediaStorageSOPInstanceUID", ""))
    shared = _get(ds, "SharedFunctionalGroupsSequence")
    thickness = _float(_get(ds, "SliceThickness"))
    if thickness is None and shared:
        thickness = _float(_first([shared[0]], "PixelMeasuresSequence", "SliceThickness"))
    return FileHeader(
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        series_uid=str(_get(ds, "SeriesInstanceUID", "")),
        study_uid=str(_get(ds, "StudyInstanceUID", "")),
        frame_of_reference_uid=str(_get(ds, "FrameOfReferenceUID", "")),
        modality=str(_get(ds, "Modality", "")),
        patient_name=str(_get(ds, "PatientName", "")),
        patient_id=str(_get(ds, "PatientID", "")),
        study_date=str(_get(ds, "StudyDate", "")),
        series_description=str(_get(ds, "SeriesDescription", "")),
        series_number=str(_get(ds, "SeriesNumber", "")),
        rows=_int(_get(ds, "Rows"), 0),
        columns=_int(_get(ds, "Columns"), 0),
        samples_per_pixel=_int(_get(ds, "SamplesPerPixel"), 1),
        photometric=str(_get(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
        bits_allocated=_int(_get(ds, "BitsAllocated"), 16),
        bits_stored=_int(_get(ds, "BitsStored"), _int(_get(ds, "BitsAllocated"), 16)),
        pixel_representation=_int(_get(ds, "PixelRepresentation"), 0),
        transfer_syntax=str(_get(meta, "TransferSyntaxUID", "")),
        slice_thickness=thickness,
        spacing_between_slices=_float(_get(ds, "SpacingBetweenSlices")),
        has_modality_lut=_get(ds, "ModalityLUTSequence") is not None,
        number_of_frames=max(1, _int(_get(ds, "NumberOfFrames"), 1)),
    )


def check_pixel_claim(header: FileHeader, file_size: int) -> None:
    """Raise :class:`~unetgui.core.errors.FormatError` when the image size a header claims is beyond the
    limits or cannot be in a file of ``file_size`` bytes: raw pixels need every byte, and a compressed
    frame at least its 8-byte item header (deflate: one byte per frame as a floor)."""
    name = os.path.basename(header.path)
    limits.check_shape((header.number_of_frames, header.rows, header.columns), name)
    if header.transfer_syntax in _NATIVE_SYNTAXES:
        need = math.ceil(header.number_of_frames * header.rows * header.columns * max(1, header.samples_per_pixel)
                         * max(1, header.bits_allocated) / 8)
    else:
        need = header.number_of_frames * (1 if header.transfer_syntax == _DEFLATED else 8)
    if need > file_size:
        raise FormatError(f"{name}: the header claims {header.number_of_frames} frame(s) of {header.rows} x "
                         f"{header.columns} ({need:,} bytes at least), but the file has {file_size:,} bytes")


def frames_of(ds: pydicom.Dataset, header: FileHeader) -> list[FrameRef]:
    """The 2-D images in ``ds`` with their geometry and rescale."""
    n = header.number_of_frames
    shared = _get(ds, "SharedFunctionalGroupsSequence")
    per_frame = _get(ds, "PerFrameFunctionalGroupsSequence")
    top_position = _floats(_get(ds, "ImagePositionPatient"), 3)
    top_orientation = _orientation(_get(ds, "ImageOrientationPatient"))
    top_spacing = _spacing(_get(ds, "PixelSpacing")) or _spacing(_get(ds, "ImagerPixelSpacing"))
    top_slope = _float(_get(ds, "RescaleSlope"))
    top_intercept = _float(_get(ds, "RescaleIntercept"))
    instance = _int(_get(ds, "InstanceNumber"), 0)
    base_temporal = (
        _float(_get(ds, "TemporalPositionIdentifier")) or 0.0,
        _float(_get(ds, "AcquisitionNumber")) or 0.0,
        _float(_get(ds, "TriggerTime")) or 0.0,
        float(instance),
    )
    frames: list[FrameRef] = []
    if per_frame is not None and len(per_frame) == n:  # Enhanced CT/MR, also with a single frame
        shared_groups = [shared[0]] if shared else []
        for i in range(n):
            groups = [per_frame[i], *shared_groups]
            slope = _float(_first(groups, "PixelValueTransformationSequence", "RescaleSlope"))
            intercept = _float(_first(groups, "PixelValueTransformationSequence", "RescaleIntercept"))
            temporal = _float(_first(groups, "FrameContentSequence", "TemporalPositionIndex"))
            frames.append(FrameRef(
                file=header, frame=i if n > 1 else None,
                position=_floats(_first(groups, "PlanePositionSequence", "ImagePositionPatient"), 3) or top_position,
                orientation=_orientation(_first(groups, "PlaneOrientationSequence", "ImageOrientationPatient"))
                or top_orientation,
                pixel_spacing=_spacing(_first(groups, "PixelMeasuresSequence", "PixelSpacing")) or top_spacing,
                slope=slope if slope is not None else (top_slope if top_slope is not None else 1.0),
                intercept=intercept if intercept is not None else (top_intercept or 0.0),
                temporal_key=(temporal or 0.0, *base_temporal[1:3], float(i)),
                instance_number=instance,
            ))
        return frames
    offsets = _get(ds, "GridFrameOffsetVector")
    positions: list[tuple[float, float, float] | None] = [top_position] + [None] * (n - 1)
    if n > 1 and top_position is not None and top_orientation is not None and offsets is not None:
        offs = _floats(offsets, n)
        if offs is not None:
            normal = np.cross(top_orientation[:3], top_orientation[3:])
            positions = [tuple(float(c) for c in np.add(top_position, o * normal)) for o in offs]
    for i in range(n):
        frames.append(FrameRef(
            file=header, frame=i if n > 1 else None,
            position=positions[i], orientation=top_orientation, pixel_spacing=top_spacing,
            slope=top_slope if top_slope is not None else 1.0, intercept=top_intercept or 0.0,
            temporal_key=(*base_temporal[:3], float(instance * 100000 + i)), instance_number=instance,
        ))
    return frames
