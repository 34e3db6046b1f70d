"""DICOM Segmentation objects (highdicom): write a label map referencing its source series, read one back.

Label values become segments 1..N (DICOM requires consecutive segment numbers); the original value is
kept in each segment's TrackingID (``unetgui-label-<value>``) so that a round trip is exact. Reading
maps frames to the image slices through the referenced SOP instances, so it is exact regardless of
frame order; segments that overlap are resolved in segment order (the higher segment wins) with a
warning.

Each segment is coded from its label name (:func:`segment_coding`): the name is looked up among the
DICOM segmentation property types (CID 7191 tissue, 7192 anatomical structure, 7194 morphologically
abnormal structure, as pydicom's code dictionary holds them; no code is made up here), with a few
spellings and synonyms folded ("grey matter", "tumour", "kidneys"), a "left"/"right" becoming a
laterality modifier, and an abnormal structure with an organ ("liver tumour") becoming the abnormality in
that anatomic region. A name that matches nothing stays Tissue/Tissue. A label that came with codes (read
from a DICOM-SEG or a Slicer segmentation, :attr:`Label.codes`) keeps them instead (:func:`label_coding`).
The algorithm type says who made each segment (:func:`algorithm_type`).
"""

from __future__ import annotations

import io
import os
import re
import warnings as _warnings
from dataclasses import dataclass
from functools import lru_cache

import highdicom as hd
import numpy as np
import pydicom
from pydicom.filewriter import dcmwrite
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from unetgui import __version__
from unetgui.core import atomic
from unetgui.core.errors import FormatError, UnetguiError
from unetgui.core.limits import MAX_SIDE, MAX_SLICES, check_shape
from unetgui.core.textsafe import one_line, parse_int, printable
from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable, Volume, default_color
from unetgui.formats.dicom.headers import check_inflated_size

_TRACKING = re.compile(r"^unetgui-label-(\d+)$")
#: the longest value of DICOM's LO (long string) VR: segment labels, descriptions, code meanings
LO_CHARS = 64
#: the longest value of DICOM's SH (short string) VR: coding scheme designators
SH_CHARS = 16
#: segments listed by :func:`describe_segments` (a crafted file may define 65,535)
MAX_SEGMENTS_SHOWN = 300


def lo_text(text: object, fallback: str = "") -> str:
    """``text`` as a DICOM LO value: control characters (line breaks, escape sequences) made spaces, cut to
    :data:`LO_CHARS` characters; ``fallback`` when nothing is left."""
    return one_line(text)[:LO_CHARS].strip() or fallback


def write_dicom_seg(
    labels: LabelMap, volume: Volume, path: str, series_description: str = "unetgui segmentation",
    algorithm: str = "unetgui", edited: np.ndarray | None = None, model_made: bool | np.ndarray | None = None,
) -> None:
    """Write ``labels`` (on ``volume``'s grid) as a BINARY DICOM-SEG that references the source images.

    ``edited`` ``(z,)`` bool: the slices the user drew or corrected by hand; ``model_made``: True when the
    labels came from a model (then corrected where ``edited``), a ``(z,)`` bool array of the slices a model
    wrote, False when no model took part, None (the default) when unknown. Together they set each segment's
    algorithm type (:func:`algorithm_type`); unknown is SEMIAUTOMATIC.

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
    present = np.stack([(labels.labels == v).any(axis=(1, 2)) for v in values])  # (segments, z)
    kinds = [algorithm_type(p, edited, model_made) for p in present]
    descriptions = [_description(n, labels.table.get(v) or Label(v, f"Label {v}", default_color(v)),
                                 lo_text(algorithm, "unetgui"), kind)
                    for n, (v, kind) in enumerate(zip(values, kinds), start=1)]
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation(
                source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=900,
                sop_instance_uid=hd.UID(), instance_number=1, manufacturer="unetgui",
                manufacturer_model_name="unetgui", software_versions=__version__, device_serial_number="0",
                series_description=lo_text(series_description, "unetgui segmentation"), omit_empty_frames=False,
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


def algorithm_type(present: np.ndarray, edited: np.ndarray | None,
                   model_made: bool | np.ndarray | None) -> hd.seg.SegmentAlgorithmTypeValues:
    """Who made a segment found on the slices ``present`` ``(z,)`` bool (see :func:`write_dicom_seg` for
    ``edited`` and ``model_made``): MANUAL when no slice holding it came from a model, AUTOMATIC when a model
    made it and no slice holding it was edited, SEMIAUTOMATIC when model output was corrected or provenance
    is unknown. An empty segment is judged on all slices."""
    kinds = hd.seg.SegmentAlgorithmTypeValues
    if model_made is None:
        return kinds.SEMIAUTOMATIC
    present = np.asarray(present, bool)
    on = present if present.any() else np.ones_like(present)
    model = np.broadcast_to(np.asarray(model_made, bool), on.shape)
    hand = np.zeros_like(on) if edited is None else np.asarray(edited, bool)
    if hand.shape != on.shape or model.shape != on.shape:
        raise ValueError(f"edited and model_made must have one flag per slice ({on.shape[0]})")
    if not (model & on).any():
        return kinds.MANUAL
    return kinds.SEMIAUTOMATIC if (hand & on).any() else kinds.AUTOMATIC


# -- coding of segments by their label names ------------------------------------------------------

@dataclass(frozen=True)
class SegmentCoding:
    """Segmented property category and type of a segment, with an optional laterality modifier of the
    type and an anatomic region (where an abnormal structure lies)."""

    category: Code
    type: Code
    modifier: Code | None = None
    region: Code | None = None
    region_modifier: Code | None = None


TISSUE = SegmentCoding(codes.SCT.Tissue, codes.SCT.Tissue)
_SPELLINGS = {"grey": "gray", "tumour": "tumor", "tumours": "tumors", "oesophagus": "esophagus",
              "haemorrhage": "hemorrhage", "oedema": "edema", "haematoma": "hematoma", "foetus": "fetus"}
# folded names -> keywords of pydicom's code dictionary (synonyms that the property-type lists spell otherwise)
_ALIASES = {"tumor": "neoplasm", "tumors": "neoplasm", "metastasis": "neoplasmsecondary",
            "metastases": "neoplasmsecondary", "bone": "bonetissue", "bones": "bonetissue", "fat": "adiposetissue",
            "muscle": "muscletissue", "urinarybladder": "bladder", "vessel": "bloodvessel", "vessels": "bloodvessel"}
_IGNORED = {"of", "the", "structure", "whole", "label", "segment"}
_SIDES = {"left": codes.SCT.Left, "right": codes.SCT.Right}
_NOT_SEGMENTS = {"background", "normal"}  # in CID 7194, but no label is named so to mean that structure


@lru_cache(maxsize=1)
def _property_types() -> tuple[dict[str, SegmentCoding], dict[str, SegmentCoding]]:
    """(tissue and anatomical structure types, morphologically abnormal structure types), by lowercase
    keyword, from the DICOM context groups of segmentation property types as pydicom holds them."""
    normal: dict[str, SegmentCoding] = {}
    for category, cid in ((codes.SCT.Tissue, codes.cid7191), (codes.SCT.AnatomicalStructure, codes.cid7192)):
        for keyword in cid.dir():
            normal[keyword.lower()] = SegmentCoding(category, getattr(cid, keyword))
    abnormal = {k.lower(): SegmentCoding(codes.SCT.MorphologicallyAbnormalStructure, getattr(codes.cid7194, k))
                for k in codes.cid7194.dir() if k.lower() not in _NOT_SEGMENTS}
    return normal, abnormal


def _lookup(words: list[str], table: dict[str, SegmentCoding]) -> SegmentCoding | None:
    """The entry of ``words`` run together, through the aliases; a plural ``s`` may be dropped."""
    if not words:
        return None
    key = "".join(words)
    for candidate in (key, key[:-1] if key.endswith("s") else key):
        found = table.get(_ALIASES.get(candidate, candidate))
        if found is not None:
            return found
    return None


def segment_coding(name: str) -> SegmentCoding:
    """The SNOMED CT category and type (and laterality, anatomic region) for a label called ``name``:
    case, punctuation, numbers, British spelling and plurals do not matter; Tissue/Tissue when nothing fits."""
    words = [_SPELLINGS.get(w, w) for w in re.findall(r"[a-z]+", name.lower())]
    words = [w for w in words if w not in _IGNORED]
    normal, abnormal = _property_types()
    found = _lookup(words, abnormal) or _lookup(words, normal)
    if found is not None:
        return found
    for i, word in enumerate(words):  # "liver tumour", "tumour of the liver", "enhancing lesion"
        kind = _lookup([word], abnormal)
        if kind is not None:
            region = _lookup(words[:i] + words[i + 1:], normal)
            if region is not None:
                return SegmentCoding(kind.category, kind.type, region=region.type)
    sides = [w for w in words if w in _SIDES]
    if len(sides) == 1:  # "left kidney", "kidney right": the structure with a laterality modifier
        part = _lookup([w for w in words if w not in _SIDES], normal)
        if part is not None and part.category == codes.SCT.AnatomicalStructure:
            return SegmentCoding(part.category, part.type, modifier=_SIDES[sides[0]])
    return TISSUE


def label_coding(label: Label) -> SegmentCoding:
    """The codes a segmentation file gave ``label`` (read from a DICOM-SEG or a Slicer segmentation and kept
    while the label keeps its name); else the coding of its name (:func:`segment_coding`)."""
    if label.code("category") is None or label.code("type") is None:
        return segment_coding(label.name)

    def code(role: str) -> Code | None:  # codes read from another file: one line each, the meaning an LO
        found = label.code(role)
        if found is None:
            return None
        scheme, value = one_line(found[0])[:SH_CHARS], one_line(found[1])
        return Code(value, scheme, lo_text(found[2], lo_text(value, "?")))

    return SegmentCoding(code("category"), code("type"), code("modifier"), code("region"),  # type: ignore[arg-type]
                         code("region_modifier"))


def _description(number: int, label: Label, algorithm: str,
                 kind: hd.seg.SegmentAlgorithmTypeValues) -> hd.seg.SegmentDescription:
    coding = label_coding(label)
    description = hd.seg.SegmentDescription(
        segment_number=number, segment_label=lo_text(label.name, f"Label {label.value}"),
        segmented_property_category=coding.category, segmented_property_type=coding.type,
        algorithm_type=kind,
        algorithm_identification=None if kind == hd.seg.SegmentAlgorithmTypeValues.MANUAL else
        hd.AlgorithmIdentificationSequence(name=algorithm, version=__version__,
                                           family=codes.cid7162.ArtificialIntelligence),
        tracking_uid=hd.UID(), tracking_id=f"unetgui-label-{label.value}",
        anatomic_regions=[coding.region] if coding.region is not None else None,
        display_color=hd.color.CIELabColor.from_rgb(*label.color),
    )
    if coding.modifier is not None:
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            hd.sr.CodedConcept.from_code(coding.modifier)]
    if coding.region is not None and coding.region_modifier is not None:
        description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [
            hd.sr.CodedConcept.from_code(coding.region_modifier)]
    return description


def read_dicom_seg(path: str, reference: Volume) -> tuple[LabelMap, tuple[str, ...]]:
    """Labels of the DICOM-SEG ``path`` on ``reference``'s grid, and warnings.

    Frames (or, in a LABELMAP segmentation, pixel values) of a segment number that the file does not define
    are kept, not dropped: each such number becomes a label named "Segment N (not defined in the file)", with
    a warning saying how many voxels it holds. Names and code meanings are read as one line each (control
    characters made spaces), cut to DICOM's 64 characters.

    Raises :class:`FormatError` if the file is not a readable segmentation or references no slice of
    ``reference``.
    """
    name = printable(os.path.basename(path))
    try:  # pydicom parses elements when they are first used: a damaged one can fail anywhere below
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            return _read(path, name, reference)
    except UnetguiError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file is one line, whatever part of it fails
        raise FormatError(f"{name}: not a readable DICOM segmentation ({type(exc).__name__}: {printable(exc)})") from exc


def _read(path: str, name: str, reference: Volume) -> tuple[LabelMap, tuple[str, ...]]:
    seg, undefined = _read_seg(path, name)
    numbers = list(seg.segment_numbers)
    values, table = _segment_values(seg, numbers, name, undefined)
    referenced = {r.ReferencedSOPInstanceUID for r in _referenced_instances(seg)}
    rows = [k for k, s in enumerate(reference.sources) if s is not None and s.sop_instance_uid in referenced]
    if not rows:
        raise FormatError(f"{name}: the segmentation does not reference any image of this series "
                          f"(it was made on series {printable(_referenced_series(seg)) or 'unknown'})")
    out, overlap = _paint_segments(seg, reference, rows, numbers, values, name)
    notes = []
    if overlap:
        notes.append(f"{name}: segments overlap in {overlap} voxel(s); each such voxel got the later segment")
    for number, frames in sorted(undefined.items()):
        value = values[numbers.index(number)]
        notes.append(f"{name}: {frames} frame(s) refer to segment {number}, which the file does not define; their "
                     f"{int(np.count_nonzero(out == value)):,} voxel(s) are kept as label {value} "
                     f"\"{table.get(value).name}\"")
    return LabelMap(out, reference.affine.copy(), table), tuple(notes)


def _paint_segments(seg: hd.seg.Segmentation, reference: Volume, rows: list[int], numbers: list[int],
                    values: list[int], name: str) -> tuple[np.ndarray, int]:
    """The label volume ``(z, y, x)`` uint8 with segment ``numbers[i]`` drawn as ``values[i]`` on the slices
    ``rows`` of ``reference``, and the number of voxels in which segments overlap (the later one wins)."""
    out = np.zeros(reference.shape, np.uint8)
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
        raise FormatError(f"{name}: the segmentation frames cannot be decoded ({type(exc).__name__}: "
                          f"{printable(exc)})") from exc
    return out, overlap


def _read_seg(path: str, name: str) -> tuple[hd.seg.Segmentation, dict[int, int]]:
    """The segmentation, and the segment numbers its frames use but its SegmentSequence does not define (with
    the number of frames of each): those are added to the segment list as placeholders, so that their
    voxels are read like any segment's."""
    check_inflated_size(path)  # a deflated SEG is measured before pydicom inflates it whole
    ds = pydicom.dcmread(path)
    if ds.file_meta.get("TransferSyntaxUID") == ExplicitVRBigEndian and int(ds.get("BitsAllocated", 1)) <= 8:
        # highdicom parses little endian only; byte-oriented (OB) pixel data is the same in both
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, little_endian=True, implicit_vr=False, force_encoding=True)
        buffer.seek(0)
        ds = pydicom.dcmread(buffer)
    _check_frames(ds, name)
    undefined = _undefined_segments(ds, name)
    for number in sorted(undefined):
        ds.SegmentSequence.append(hd.seg.SegmentDescription(
            segment_number=max(number, 1), segment_label=f"Segment {number}", segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
        ds.SegmentSequence[-1].SegmentNumber = number  # 0 too: SegmentDescription refuses it, the file used it
    return hd.seg.Segmentation.from_dataset(ds, copy=False), undefined


def _check_frames(ds: pydicom.Dataset, name: str) -> None:
    """The frame count and size that the header claims, checked against the limits, the per-frame descriptions
    and (uncompressed) the pixel data the file holds, before anything follows them. A BINARY or FRACTIONAL SEG
    has a frame per segment and slice, decoded a slice at a time: its frame count is bounded by what the file
    describes and holds; a LABELMAP, decoded whole, must also fit the limits on a volume."""
    frames = parse_int(ds.get("NumberOfFrames", 1), f"{name}: NumberOfFrames", 1, MAX_SLICES * UNANNOTATED)
    rows = parse_int(ds.get("Rows"), f"{name}: Rows", 1, MAX_SIDE)
    columns = parse_int(ds.get("Columns"), f"{name}: Columns", 1, MAX_SIDE)
    bits = parse_int(ds.get("BitsAllocated", 1), f"{name}: BitsAllocated", 1, 64)
    if str(ds.get("SegmentationType", "")).upper() == "LABELMAP":
        check_shape((frames, rows, columns), name, itemsize=max(bits // 8, 1))
    described = ds.get("PerFrameFunctionalGroupsSequence")
    if (described is None and frames > 1) or (described is not None and len(described) != frames):
        raise FormatError(f"{name}: NumberOfFrames says {frames}, but the file describes {len(described or [])} frame(s)")
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if "PixelData" in ds and syntax is not None and not pydicom.uid.UID(syntax).is_compressed:
        need = -(-frames * rows * columns * int(ds.get("SamplesPerPixel", 1) or 1) * bits // 8)
        if len(ds.PixelData) < need:
            raise FormatError(f"{name}: the header claims {need:,} bytes of pixel data, but the file holds "
                              f"{len(ds.PixelData):,}")


def _undefined_segments(ds: pydicom.Dataset, name: str) -> dict[int, int]:
    """Segment numbers used by the frames of ``ds`` (their SegmentIdentificationSequence; in a LABELMAP
    segmentation the pixel values) that its SegmentSequence does not define, each with its number of frames."""
    if "SegmentSequence" not in ds:
        ds.SegmentSequence = []
    defined = {parse_int(item.get("SegmentNumber"), f"{name}: a segment's SegmentNumber", 0, 65535)
               for item in ds.SegmentSequence}
    counts: dict[int, int] = {}
    if str(ds.get("SegmentationType", "")).upper() == "LABELMAP":  # sizes checked by _check_frames
        pixels = ds.pixel_array.reshape(int(ds.get("NumberOfFrames", 1)), -1)
        for value in np.unique(pixels):
            if value and int(value) not in defined:
                counts[int(value)] = int(np.count_nonzero((pixels == value).any(axis=1)))
        return counts
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    for i, group in enumerate(ds.get("PerFrameFunctionalGroupsSequence", [])):
        ident = group.get("SegmentIdentificationSequence") or (shared.get("SegmentIdentificationSequence")
                                                              if shared is not None else None)
        if not ident:
            continue  # highdicom says what is missing
        number = parse_int(ident[0].get("ReferencedSegmentNumber"),
                           f"{name}: frame {i + 1}'s ReferencedSegmentNumber", 0, 65535)
        if number not in defined:
            counts[number] = counts.get(number, 0) + 1
    return counts


def _segment_values(seg: hd.seg.Segmentation, numbers: list[int], name: str,
                    undefined: dict[int, int]) -> tuple[list[int], LabelTable]:
    """Label value and table entry of each segment: unetgui's tracking ID, else the segment number. A segment
    number the file does not define (``undefined``) keeps its number as value where it is free, else takes the
    lowest free value."""
    labels: dict[int, Label] = {}
    for n in numbers:
        if n in undefined:
            continue
        desc = seg.get_segment_description(n)
        match = _TRACKING.match(str(desc.get("TrackingID", "") or ""))
        value = parse_int(match.group(1), f"{name}: segment {n}'s label value (its TrackingID)", 1, UNANNOTATED - 1) \
            if match else n
        if not 1 <= value < UNANNOTATED:
            raise FormatError(f"{name}: segment {n} cannot be mapped to a label value 1..254 (it would be {value})")
        if value in {lab.value for lab in labels.values()}:
            raise FormatError(f"{name}: the segmentation's segments cannot be mapped to distinct label values 1..254")
        labels[n] = Label(value, lo_text(desc.get("SegmentLabel", ""), f"Label {value}"), _display_color(desc, value),
                          _segment_codes(desc))
    for n in sorted(undefined):
        used = {lab.value for lab in labels.values()}
        free = [v for v in range(1, UNANNOTATED) if v not in used]
        if not free:
            raise FormatError(f"{name}: frames refer to segment {n}, which the file does not define, and no label "
                              "value is left for it")
        value = n if n in free else free[0]
        labels[n] = Label(value, f"Segment {n} (not defined in the file)", default_color(value))
    ordered = [labels[n] for n in numbers]
    return [lab.value for lab in ordered], LabelTable(tuple(ordered))


def describe_segments(path: str) -> list[str]:
    """One line per segment of the DICOM-SEG ``path``, from its header alone: number, label and what it is
    (its coded type, category, modifier, anatomic region)."""
    try:
        check_inflated_size(path)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        lines = []
        for item in ds.get("SegmentSequence", [])[:MAX_SEGMENTS_SHOWN]:
            label = Label(1, lo_text(item.get("SegmentLabel", ""), "(no label)"), (0, 0, 0), _segment_codes(item))
            lines.append(printable(f"segment {item.get('SegmentNumber', '?')}: {label.name} "
                                   f"({label.coded_as() or 'not coded'})", 400))
        if len(ds.get("SegmentSequence", [])) > MAX_SEGMENTS_SHOWN:
            lines.append(f"... and {len(ds.SegmentSequence) - MAX_SEGMENTS_SHOWN} more segment(s)")
        return lines
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line, like every reader's error
        raise FormatError(f"{printable(os.path.basename(path))}: the segments cannot be read "
                          f"({type(exc).__name__}: {printable(exc)})") from exc


def _segment_codes(desc) -> tuple[tuple[str, str, str, str], ...]:
    """The segment's category, type, type modifier and anatomic region as a Label's codes; none when the
    category or the type is missing or malformed (the label is then coded by its name on export)."""
    def first(sequence) -> tuple[str, str, str] | None:
        item = sequence[0] if sequence else None
        if item is None or not str(item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue") or ""):
            return None
        value = one_line(item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue"))
        scheme = one_line(item.get("CodingSchemeDesignator", ""))
        if not value or len(value) > 256 or len(scheme) > SH_CHARS:  # not a code this file could hold
            return None
        return current_code(scheme, value, lo_text(item.get("CodeMeaning", ""), value[:LO_CHARS]))

    try:
        kind = desc.get("SegmentedPropertyTypeCodeSequence", [])
        region = desc.get("AnatomicRegionSequence", [])
        found = {"category": first(desc.get("SegmentedPropertyCategoryCodeSequence", [])), "type": first(kind),
                 "modifier": first(kind[0].get("SegmentedPropertyTypeModifierCodeSequence", [])) if kind else None,
                 "region": first(region),
                 "region_modifier": first(region[0].get("AnatomicRegionModifierSequence", [])) if region else None}
    except (AttributeError, TypeError, IndexError, KeyError):
        return ()
    if found["category"] is None or found["type"] is None:
        return ()
    return tuple((role, *code) for role, code in found.items() if code is not None)


def current_code(scheme: str, value: str, meaning: str) -> tuple[str, str, str]:
    """A retired SNOMED RT code (``SRT``, e.g. dcmqi's ``T-62000`` Liver) as its SNOMED CT code, which new
    DICOM objects must use; pydicom's SRT-to-SCT table is the only one at hand (a private module: without it
    the code is kept as it came)."""
    if scheme != "SRT":
        return scheme, value, meaning
    try:
        from pydicom.sr._snomed_dict import mapping
    except ImportError:  # pragma: no cover - a pydicom without the table
        return scheme, value, meaning
    found = mapping.get("SRT", {}).get(value)
    return ("SCT", found, meaning) if found else (scheme, value, meaning)


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
