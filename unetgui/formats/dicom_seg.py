"""DICOM Segmentation objects (highdicom): write a label map referencing its source series, read one back.

Label values become segments 1..N (DICOM requires consecutive segment numbers); the original value is
kept in each segment's TrackingID (``unetgui-label-<value>``) so that a round trip is exact. Reading
maps frames to the image slices through the referenced SOP instances, so it is exact regardless of
frame order; segments that overlap are resolved in segment order (the higher segment wins) with a
warning.
"""

from __future__ import annotations

import io
import os
import re
import warnings as _warnings

import highdicom as hd
import numpy as np
import pydicom
from pydicom.filewriter import dcmwrite
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from unetgui import __version__
from unetgui.core import atomic
from unetgui.core.errors import FormatError
from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable, Volume, default_color

_TRACKING = re.compile(r"^unetgui-label-(\d+)$")


def write_dicom_seg(
    labels: LabelMap, volume: Volume, path: str, series_description: str = "unetgui segmentation",
    algorithm: str = "unetgui",
) -> None:
    """Write ``labels`` (on ``volume``'s grid) as a BINARY DICOM-SEG that references the source images.

    Raises :class:`FormatError` when the volume does not come from DICOM files with SOP instance UIDs.
    """
    if not labels.fits(volume):
        raise FormatError("the labels are not on the image grid of this series")
    slices = [k for k, s in enumerate(volume.sources) if s is not None]
    if not slices or any(not volume.sources[k].sop_instance_uid for k in slices):
        raise FormatError("DICOM-SEG needs the source DICOM images with their SOP instance UIDs; "
                          "this volume has none (not loaded from DICOM, or anonymised UIDs)")
    data = labels.labels[slices]
    data = np.where(data == UNANNOTATED, 0, data)
    values = sorted(set(labels.table.values) | {int(v) for v in np.unique(data) if v})
    if not values:
        raise FormatError("the label map has no labels to export")
    lut = np.zeros(256, np.uint8)
    lut[values] = np.arange(1, len(values) + 1)
    sources = _source_datasets(volume, slices)
    pixels = lut[data]
    frames = [volume.sources[k].frame for k in slices]
    if any(f is not None for f in frames):
        # highdicom pairs pixel frame i with source frame i + 1: put every slice at its frame's place
        if len(sources) != 1:
            raise FormatError("a DICOM-SEG can reference single-frame images or one multi-frame file, "
                              "not a volume stacked from several multi-frame files")
        full = np.zeros((int(sources[0].get("NumberOfFrames", 1)), *pixels.shape[1:]), np.uint8)
        full[frames] = pixels
        pixels = full
    descriptions = [_description(n, labels.table.get(v) or Label(v, f"Label {v}", default_color(v)), algorithm)
                    for n, v in enumerate(values, start=1)]
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation(
                source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=900,
                sop_instance_uid=hd.UID(), instance_number=1, manufacturer="unetgui",
                manufacturer_model_name="unetgui", software_versions=__version__, device_serial_number="0",
                series_description=series_description, omit_empty_frames=False,
            )
    except AttributeError as exc:
        raise FormatError(f"cannot build a DICOM-SEG: the source images lack an attribute it must copy ({exc})") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise FormatError(f"cannot build a DICOM-SEG for this series: {exc}") from exc
    try:
        atomic.write_with(path, seg.save_as)
    except OSError as exc:
        raise FormatError(f"cannot write {path}: {exc}") from exc


def _source_datasets(volume: Volume, slices: list[int]) -> list[pydicom.Dataset]:
    """Headers of the source images, one per slice (or the one multi-frame file)."""
    paths = list(dict.fromkeys(volume.sources[k].path for k in slices))
    try:
        datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    except Exception as exc:
        raise FormatError(f"the source DICOM files must still be readable to write a DICOM-SEG: {exc}") from exc
    for ds in datasets:
        if not ds.get("SOPInstanceUID") or not ds.get("SOPClassUID"):
            raise FormatError("DICOM-SEG needs the source images' SOP instance UIDs; these files have blank "
                              "UIDs (anonymised), so a segmentation could not reference them")
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet  # empty value = default repertoire; highdicom rejects ''
    return datasets


def _description(number: int, label: Label, algorithm: str) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=label.name,
        segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm, version=__version__, family=codes.cid7162.ArtificialIntelligence,
        ),
        tracking_uid=hd.UID(), tracking_id=f"unetgui-label-{label.value}",
        display_color=hd.color.CIELabColor.from_rgb(*label.color),
    )


def read_dicom_seg(path: str, reference: Volume) -> tuple[LabelMap, tuple[str, ...]]:
    """Labels of the DICOM-SEG ``path`` on ``reference``'s grid, and warnings.

    Raises :class:`FormatError` if the file is not a readable segmentation or references no slice of
    ``reference``.
    """
    name = os.path.basename(path)
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            seg = _read_seg(path)
    except Exception as exc:
        raise FormatError(f"{name}: not a readable DICOM segmentation ({type(exc).__name__}: {exc})") from exc
    numbers = list(seg.segment_numbers)
    values, table = _segment_values(seg, numbers)
    out = np.zeros(reference.shape, np.uint8)
    referenced = {r.ReferencedSOPInstanceUID for r in _referenced_instances(seg)}
    rows = [k for k, s in enumerate(reference.sources) if s is not None and s.sop_instance_uid in referenced]
    if not rows:
        raise FormatError(f"{name}: the segmentation does not reference any image of this series "
                          f"(it was made on series {_referenced_series(seg) or 'unknown'})")
    overlap = 0
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            for k in rows:
                src = reference.sources[k]
                if src.frame is None:
                    masks = seg.get_pixels_by_source_instance([src.sop_instance_uid], segment_numbers=numbers, ignore_spatial_locations=True,
                                                              assert_missing_frames_are_empty=True)[0]
                else:
                    masks = seg.get_pixels_by_source_frame(src.sop_instance_uid, [src.frame + 1],
                                                           segment_numbers=numbers, ignore_spatial_locations=True,
                                                           assert_missing_frames_are_empty=True)[0]
                if masks.shape[:2] != reference.shape[1:]:
                    raise FormatError(f"{name}: frames are {masks.shape[:2]}, the images {reference.shape[1:]}")
                for i, value in enumerate(values):
                    on = masks[:, :, i] >= (0.5 if masks.dtype.kind == "f" else 1)
                    overlap += int(np.count_nonzero(on & (out[k] != 0)))
                    out[k][on] = value
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"{name}: the segmentation frames cannot be decoded ({type(exc).__name__}: {exc})") from exc
    notes = []
    if overlap:
        notes.append(f"{name}: segments overlap in {overlap} voxel(s); each such voxel got the later segment")
    return LabelMap(out, reference.affine.copy(), table), tuple(notes)


def _read_seg(path: str) -> hd.seg.Segmentation:
    ds = pydicom.dcmread(path)
    if ds.file_meta.get("TransferSyntaxUID") == ExplicitVRBigEndian and int(ds.get("BitsAllocated", 1)) <= 8:
        # highdicom parses little endian only; byte-oriented (OB) pixel data is the same in both
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, little_endian=True, implicit_vr=False, force_encoding=True)
        buffer.seek(0)
        ds = pydicom.dcmread(buffer)
    return hd.seg.Segmentation.from_dataset(ds, copy=False)


def _segment_values(seg: hd.seg.Segmentation, numbers: list[int]) -> tuple[list[int], LabelTable]:
    """Label value and table entry of each segment: unetgui's tracking ID, else the segment number."""
    labels = []
    for n in numbers:
        desc = seg.get_segment_description(n)
        match = _TRACKING.match(desc.tracking_id or "")
        value = int(match.group(1)) if match else n
        if not 1 <= value < UNANNOTATED:
            raise FormatError(f"segment {n} cannot be mapped to a label value 1..254 (it would be {value})")
        labels.append(Label(value, desc.segment_label or f"Label {value}", _display_color(desc, value)))
    if len({lab.value for lab in labels}) != len(labels):
        raise FormatError("the segmentation's segments cannot be mapped to distinct label values 1..254")
    return [lab.value for lab in labels], LabelTable(tuple(labels))


def _display_color(desc, value: int) -> tuple[int, int, int]:
    """The segment's recommended colour as RGB; the label's default colour when it is absent or not three
    CIELab values (a colour is never worth refusing the segmentation)."""
    try:
        lab = hd.color.CIELabColor.from_dicom_value(desc.RecommendedDisplayCIELabValue)
        return tuple(int(np.clip(c, 0, 255)) for c in lab.to_rgb())  # type: ignore[return-value]
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return default_color(value)


def _referenced_instances(seg: hd.seg.Segmentation) -> list:
    out = []
    for series in seg.get("ReferencedSeriesSequence", []):
        out.extend(series.get("ReferencedInstanceSequence", []))
    return out


def _referenced_series(seg: hd.seg.Segmentation) -> str:
    series = seg.get("ReferencedSeriesSequence", [])
    return str(series[0].get("SeriesInstanceUID", "")) if series else ""
