"""NRRD (.nrrd, .nhdr with detached data): images, label maps and 3D Slicer segmentations (.seg.nrrd).

Geometry comes from ``space`` (RAS, LPS or LAS), ``space directions`` (one vector per array axis, in mm)
and ``space origin``; pynrrd's Fortran index order gives arrays indexed ``(x, y, z)``, so the affine's
columns are the space directions (converted to RAS) and unetgui's voxels are that array transposed to
``(z, y, x)``. Label maps are mapped onto the image grid exactly as NIfTI labels are
(:func:`unetgui.formats.nifti.onto_grid`: axis permutations and flips only, else
:class:`~unetgui.core.errors.GeometryError`), and take their names from a table next to them
(:func:`unetgui.formats.label_tables.find_table`).

A Slicer segmentation is a NRRD with ``Segment{i}_*`` keys. Reading: every segment is a label named by
``Segment{i}_Name`` in the colour ``Segment{i}_Color`` (floats 0..1); it covers the voxels of layer
``Segment{i}_Layer`` equal to ``Segment{i}_LabelValue`` (files of Slicer before 4.11 have one layer per segment,
of value 1). With one layer the label values are kept; with several (a 4-D array, overlapping segments
allowed) segments are numbered 1..K in file order, and a voxel in several segments gets the later one, with a
note. Slicer crops a segmentation to its segments' extent by default: a grid that is an axis-aligned sub-box
of the reference grid (same spacing and directions, whole-voxel offset) is embedded in it, background outside.
Writing (:func:`write_segmentation`): one layer on the full reference grid, LPS, gzip, a segment per label
with the keys Slicer writes.

Header and data are read with bounded reads: a header claiming more voxels than the limits
(:mod:`unetgui.core.limits`) or than its data can hold is refused before anything is allocated.
"""

from __future__ import annotations

import bz2
import math
import os
import re
import zlib

import nrrd as pynrrd
import numpy as np

from unetgui.core import atomic, limits
from unetgui.core.errors import FormatError
from unetgui.core.geometry import LPS_TO_RAS
from unetgui.core.volume import MAX_LABEL, Label, LabelMap, LabelTable, Volume, default_color, without_unannotated
from unetgui.formats import label_tables, nifti

SUFFIXES = (".nrrd", ".nhdr")
#: signs that turn a vector of this space into RAS
_SPACES = {
    "right-anterior-superior": (1.0, 1.0, 1.0), "ras": (1.0, 1.0, 1.0),
    "left-posterior-superior": (-1.0, -1.0, 1.0), "lps": (-1.0, -1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0), "las": (-1.0, 1.0, 1.0),
}
_TYPES = {
    "i1": ("signed char", "int8", "int8_t"),
    "u1": ("uchar", "unsigned char", "uint8", "uint8_t"),
    "i2": ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    "u2": ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    "i4": ("int", "signed int", "int32", "int32_t"),
    "u4": ("uint", "unsigned int", "uint32", "uint32_t"),
    "i8": ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t"),
    "u8": ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
    "f4": ("float",),
    "f8": ("double",),
}
_DTYPES = {name: np.dtype(code) for code, names in _TYPES.items() for name in names}
_MAX_HEADER = 4 << 20  # Slicer's headers are a few kB, a hundred segments' tags some 100 kB
_CHUNK = 1 << 20
_MAX_ASCII_VALUES = 1 << 24  # text is a slow, large way to store voxels: small volumes only
_SEGMENT_KEY = re.compile(r"^Segment(\d+)_(ID|Name)$")


def is_nrrd(path: str) -> bool:
    return path.lower().endswith(SUFFIXES)


# -- reading ---------------------------------------------------------------------------------------------

def _read(path: str) -> tuple[dict, np.ndarray]:
    """Header and data (Fortran order, array axes as in the header) of a NRRD file, with every size checked."""
    header, offset = _header(path)
    return header, _data(path, header, offset)


def _header(path: str) -> tuple[dict, int]:
    """The parsed header and the byte offset where attached data starts."""
    limits.check_regular_file(path)
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_MAX_HEADER)
            more = bool(f.read(1))
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise FormatError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not head.startswith(b"NRRD000"):
        raise FormatError(f"{name}: not a NRRD file (no NRRD magic line)")
    end = re.search(rb"\r?\n\r?\n", head)
    if end is None and more:
        raise FormatError(f"{name}: the NRRD header is longer than {_MAX_HEADER >> 20} MiB (damaged)")
    text = head[: end.start() if end else len(head)].decode("utf-8", "replace")
    try:
        header = pynrrd.read_header(text.splitlines(keepends=True) + ["\n"])
        sizes = [int(n) for n in header["sizes"]]
        dimension = int(header["dimension"])
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, KeyError ... on malformed headers
        raise FormatError(f"{name}: not a readable NRRD header ({exc})") from exc
    if dimension != len(sizes):
        raise FormatError(f"{name}: dimension {dimension} but {len(sizes)} sizes")
    return header, (end.end() if end else len(head))


def _data(path: str, header: dict, offset: int) -> np.ndarray:
    name = os.path.basename(path)
    sizes = [int(n) for n in header["sizes"]]
    if len(sizes) not in (3, 4):
        raise FormatError(f"{name}: {len(sizes)}-D NRRD is not supported (expected a 3-D volume)")
    spatial = [n for n, axis in zip(sizes, _spatial_axes(header, name)) if axis]
    limits.check_shape(tuple(reversed(spatial)), name)
    limits.check_shape((math.prod(sizes) // (spatial[0] * spatial[1]), spatial[1], spatial[0]), name)  # all layers
    dtype = _DTYPES.get(str(header.get("type", "")).strip().lower())
    if dtype is None:
        raise FormatError(f"{name}: NRRD type {header.get('type')!r} is not supported")
    if dtype.itemsize > 1:
        endian = str(header.get("endian", "little")).lower()
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    count = math.prod(sizes)
    data_path, start = _data_file(path, header, offset)
    raw = _read_bytes(data_path, start, header, count * dtype.itemsize, dtype, name)
    array = raw if isinstance(raw, np.ndarray) else np.frombuffer(raw, dtype, count)  # writable: a bytearray
    return array.astype(dtype.newbyteorder("="), copy=False).reshape(sizes[::-1]).T


def _data_file(path: str, header: dict, offset: int) -> tuple[str, int]:
    detached = header.get("data file", header.get("datafile"))
    if detached is None:
        return path, offset
    detached = str(detached).strip()
    if detached.upper().startswith("LIST") or " " in detached or "%" in detached:
        raise FormatError(f"{os.path.basename(path)}: data split over several files ({detached[:40]!r}) is not supported")
    full = detached if os.path.isabs(detached) else os.path.join(os.path.dirname(os.path.abspath(path)), detached)
    if not os.path.exists(full):
        raise FormatError(f"{os.path.basename(path)}: its data file {detached} does not exist")
    limits.check_regular_file(full)
    return full, 0


def _read_bytes(path: str, start: int, header: dict, need: int, dtype: np.dtype, name: str):
    """``need`` bytes of voxel data (or, for ASCII data, the parsed values); never more."""
    encoding = str(header.get("encoding", "raw")).lower()
    line_skip = int(header.get("line skip", header.get("lineskip", 0)))
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    size = os.path.getsize(path) - start
    ratio = {"raw": 1, "gzip": limits.GZIP_RATIO, "gz": limits.GZIP_RATIO}.get(encoding)
    if ratio is not None and need > size * ratio:
        raise FormatError(f"{name}: the header claims {need:,} bytes of voxels, more than its data of {size:,} bytes "
                          "can hold (truncated or damaged)")
    with open(path, "rb") as f:
        f.seek(start)
        for _ in range(max(line_skip, 0)):
            f.readline(_CHUNK)
        if encoding == "raw":
            if byte_skip == -1:
                f.seek(-need, os.SEEK_END)
            else:
                f.seek(max(byte_skip, 0), os.SEEK_CUR)
            data = bytearray(need)
            data = data[: f.readinto(data)]
        elif encoding in ("gzip", "gz", "bzip2", "bz2"):
            skip = max(byte_skip, 0)
            data = _inflate(f, encoding, need + skip, name)
            data = data[skip:] if skip else data
        elif encoding in ("ascii", "text", "txt"):
            if need // dtype.itemsize > _MAX_ASCII_VALUES:
                raise FormatError(f"{name}: {need // dtype.itemsize:,} voxels as ASCII text; unetgui reads ASCII NRRD up "
                                  f"to {_MAX_ASCII_VALUES:,} (save it as raw or gzip)")
            try:
                values = np.array(f.read(min(size, _MAX_ASCII_VALUES * 32)).split(), dtype=np.float64)
            except ValueError as exc:
                raise FormatError(f"{name}: the ASCII voxel data holds something other than numbers") from exc
            if values.size != need // dtype.itemsize:
                raise FormatError(f"{name}: {values.size:,} ASCII values, the header claims {need // dtype.itemsize:,}")
            return values.astype(dtype.newbyteorder("="))
        else:
            raise FormatError(f"{name}: NRRD encoding {encoding!r} is not supported")
    if len(data) < need:
        raise FormatError(f"{name}: the voxel data ends after {len(data):,} of {need:,} bytes (truncated)")
    return data


def _inflate(f, encoding: str, need: int, name: str) -> bytearray:
    """Decompress at most ``need`` bytes: a small file cannot unpack into all of the memory."""
    gzip = encoding in ("gzip", "gz")
    unpack = zlib.decompressobj(zlib.MAX_WBITS | 32) if gzip else bz2.BZ2Decompressor()
    out = bytearray()
    pending = b""
    try:
        while len(out) < need:
            chunk = pending or f.read(_CHUNK)
            if not chunk:
                break
            out += unpack.decompress(chunk, need - len(out))
            pending = unpack.unconsumed_tail if gzip else b""
            if unpack.eof:
                break
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        raise FormatError(f"{name}: the compressed voxel data is damaged ({exc})") from exc
    return out


def _spatial_axes(header: dict, name: str) -> list[bool]:
    """Which array axes are space (domain) axes: those with a space direction, else by ``kinds``."""
    n = int(header["dimension"])
    directions = header.get("space directions")
    if directions is not None:
        rows = np.asarray(directions, float)
        if rows.ndim != 2 or rows.shape[0] != n:
            raise FormatError(f"{name}: {len(rows)} space directions for {n} axes")
        axes = [bool(np.isfinite(rows[k]).all()) for k in range(n)]
    else:
        axes = [str(k).lower() in ("domain", "space") for k in header.get("kinds") or ["domain"] * n]
    if sum(axes) != 3:
        raise FormatError(f"{name}: {sum(axes)} space axes; unetgui reads 3-D volumes")
    return axes


def _affine(header: dict, name: str, warnings: list[str]) -> np.ndarray:
    """RAS affine of the space axes (index ``(x, y, z, 1)`` -> mm)."""
    axes = _spatial_axes(header, name)
    affine = np.eye(4)
    directions = header.get("space directions")
    if directions is None:
        spacings = np.asarray(header.get("spacings", [1.0] * len(axes)), float)[axes]
        spacings = np.where(np.isfinite(spacings) & (spacings > 0), spacings, 1.0)
        warnings.append(f"{name}: no space directions: {' x '.join(f'{s:g}' for s in spacings)} mm voxels without "
                        "orientation are assumed")
        affine[:3, :3] = np.diag(spacings)
        return affine
    space = str(header.get("space", "")).strip().lower()
    if space not in _SPACES:
        raise FormatError(f"{name}: NRRD space {header.get('space')!r} is not supported (RAS, LPS or LAS)"
                          if space else f"{name}: the NRRD header has space directions but no space (RAS, LPS, LAS)")
    rows = np.asarray(directions, float)[axes]
    if rows.shape != (3, 3):
        raise FormatError(f"{name}: space directions are not 3-D vectors")
    affine[:3, :3] = rows.T
    affine[:3, 3] = np.asarray(header.get("space origin", [0.0, 0.0, 0.0]), float)[:3]
    affine = np.diag([*_SPACES[space], 1.0]) @ affine
    if not (np.isfinite(affine).all() and abs(np.linalg.det(affine[:3, :3])) > 1e-9):
        raise FormatError(f"{name}: degenerate space directions (no valid geometry)")
    return affine


def describe(path: str) -> str:
    """From the header alone: size, type, space; for a Slicer segmentation a line per segment (name, label
    value, layer, and what its terminology entry says it is)."""
    header, _ = _header(path)
    sizes = " x ".join(str(int(n)) for n in header["sizes"])
    lines = [f"NRRD {path}: {sizes} voxels, {header.get('type')}, space {header.get('space', 'none')}"]
    if is_segmentation(header):
        indices = sorted({int(m.group(1)) for m in map(_SEGMENT_KEY.match, map(str, header)) if m})
        for k, i in enumerate(indices):
            key = f"Segment{i}_"
            name = " ".join(str(header.get(key + "Name", "")).split()) or f"Segment {k + 1}"
            codes = _terminology(header.get(key + "Tags", ""))
            what = Label(1, name, (0, 0, 0), codes).coded_as()
            lines.append(f"  segment {k + 1}: {name}, value {header.get(key + 'LabelValue', '?')} in layer "
                         f"{header.get(key + 'Layer', '?')} ({what or 'no terminology'})")
    return "\n".join(lines)


def read_image(path: str, modality: str = "") -> Volume:
    """A NRRD image as a :class:`Volume` (voxels ``(z, y, x)``, integer dtypes kept; a 4-D file: its first
    component, with a warning)."""
    header, data = _read(path)
    name = os.path.basename(path)
    warnings: list[str] = []
    axes = _spatial_axes(header, name)
    if data.ndim == 4:
        other = axes.index(False)
        kind = str((header.get("kinds") or [""] * 4)[other]).lower()
        if "rgb" in kind and data.shape[other] in (3, 4):
            rgb = np.moveaxis(data, other, -1)[..., :3].astype(np.float32)
            data = rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)
            warnings.append("colour NRRD converted to grayscale luminance")
        else:
            warnings.append(f"4-D NRRD with {data.shape[other]} components: the first was loaded")
            data = np.take(data, 0, axis=other)
    affine = _affine(header, name, warnings)
    voxels = np.ascontiguousarray(data.transpose(2, 1, 0))
    if not modality and nifti.looks_like_hu(voxels):
        modality = "CT"
        warnings.append("no modality in NRRD: treated as CT because the values look like Hounsfield units")
    return Volume(voxels, affine, modality, tuple(warnings))


def is_segmentation(header: dict) -> bool:
    """True for a 3D Slicer segmentation (``Segment{i}_ID`` / ``_Name`` keys)."""
    return any(_SEGMENT_KEY.match(str(key)) for key in header)


def read_labels(path: str, reference: Volume | None = None,
                table: LabelTable | None = None) -> tuple[LabelMap, tuple[str, ...]]:
    """A NRRD label map or a Slicer segmentation on ``reference``'s grid, and notes for the user.

    ``table`` names the values it defines; a segmentation names the others by its segments, a plain label
    map by a table next to it (else "Label N").
    """
    header, data = _read(path)
    name = os.path.basename(path)
    warnings: list[str] = []
    axes = _spatial_axes(header, name)
    affine = _affine(header, name, warnings)
    if is_segmentation(header):
        labels, segments, notes = _segments(header, data, axes, name)
        grid, affine = nifti.onto_grid(labels, affine, name, reference, embed=True)
        own = label_tables.merge(table, segments) if table else segments
        return LabelMap(grid, affine, nifti.name_labels(grid, own)), tuple(warnings) + notes
    if data.ndim == 4:
        raise FormatError(f"{name}: a label map must be 3-D, this one has {data.shape[axes.index(False)]} components "
                          "(one label value per voxel)")
    values, notes = nifti.label_values(data, name)
    grid, affine = nifti.onto_grid(values, affine, name, reference)
    found, found_notes = label_tables.find_table(path)
    return LabelMap(grid, affine, nifti.name_labels(grid, table, found)), tuple(warnings) + notes + found_notes


def _segments(header: dict, data: np.ndarray, axes: list[bool], name: str):
    """(labels (x, y, z) uint8, the segments' table, notes) of a Slicer segmentation."""
    layers = np.moveaxis(data, axes.index(False), 0) if data.ndim == 4 else data[None]
    indices = sorted({int(m.group(1)) for m in map(_SEGMENT_KEY.match, map(str, header)) if m})
    if len(indices) > MAX_LABEL:
        raise FormatError(f"{name}: {len(indices)} segments; unetgui holds up to {MAX_LABEL} labels")
    segments = [_segment(header, i, k, layers.shape[0], name) for k, i in enumerate(indices)]
    values = [value for value, *_ in segments]
    keep = layers.shape[0] == 1 and all(1 <= v <= MAX_LABEL for v in values) and len(set(values)) == len(values)
    numbers = values if keep else list(range(1, len(segments) + 1))
    table = LabelTable(tuple(Label(n, seg_name, color, _terminology(header.get(f"Segment{i}_Tags", "")))
                             for n, i, (_, _, seg_name, color) in zip(numbers, indices, segments)))
    if keep:  # one value per voxel: no overlap, one lookup
        return np.where(np.isin(layers[0], values), layers[0], 0).astype(np.uint8), table, ()
    out = np.zeros(layers.shape[1:], np.uint8)
    overlap = 0
    for number, (value, layer, _, _) in zip(numbers, segments):
        if value <= 0:
            continue  # value 0 is the background of its layer, no segment
        on = layers[layer] == value
        overlap += int(np.count_nonzero(on & (out != 0)))
        out[on] = number
    notes = (f"{name}: segments overlap in {overlap} voxel(s); each such voxel got the later segment",) if overlap else ()
    return out, table, notes


def _segment(header: dict, i: int, k: int, layers: int, name: str):
    """(label value, layer, name, colour) of segment ``i`` (the ``k``-th in the file)."""
    key = f"Segment{i}_"
    try:
        value = int(header.get(key + "LabelValue", 1))
        layer = int(header.get(key + "Layer", k if layers > 1 else 0))
    except ValueError as exc:
        raise FormatError(f"{name}: segment {i}: {exc}") from exc
    if not 0 <= layer < layers:
        raise FormatError(f"{name}: segment {i} is in layer {layer}, the file has {layers}")
    seg_name = " ".join(str(header.get(key + "Name", "")).split()) or f"Segment {k + 1}"
    color = _color(header.get(key + "Color", header.get(key + "DefaultColor")))
    return value, layer, seg_name, color or default_color(k + 1)


def _terminology(tags) -> tuple[tuple[str, str, str, str], ...]:
    """A segment's codes from the ``TerminologyEntry`` of its tags (``context~category~type~type modifier~
    anatomic context~anatomic region~region modifier``, each code ``scheme^value^meaning``); none when absent
    or without a category and a type."""
    entry = next((t[len("TerminologyEntry:"):] for t in str(tags).split("|") if t.startswith("TerminologyEntry:")), "")
    parts = entry.split("~")
    if len(parts) < 3:
        return ()
    codes = []
    for role, k in (("category", 1), ("type", 2), ("modifier", 3), ("region", 5), ("region_modifier", 6)):
        fields = [f.strip() for f in parts[k].split("^")] if k < len(parts) else []
        if len(fields) == 3 and fields[1]:
            if fields[0] == "SRT":  # older Slicer lists: the retired SNOMED RT code, as its SNOMED CT code
                from unetgui.formats.dicom_seg import current_code

                fields = list(current_code(*fields))
            codes.append((role, *fields))
    roles = {c[0] for c in codes}
    if "region_modifier" in roles and "region" not in roles:
        codes = [c for c in codes if c[0] != "region_modifier"]
    return tuple(codes) if roles >= {"category", "type"} else ()


def _terminology_entry(label: Label) -> str:
    """Slicer's ``TerminologyEntry`` tag for ``label``: the codes it came with, else those of its name."""
    from unetgui.formats.dicom_seg import label_coding  # pydicom's code tables: only when writing

    coding = label_coding(label)

    def code(c) -> str:
        return "^".join(re.sub(r"[~^|]", " ", str(part)) for part in (c.scheme_designator, c.value, c.meaning)) if c else "^^"

    return "~".join(["Segmentation category and type - DICOM master list", code(coding.category), code(coding.type),
                     code(coding.modifier), "Anatomic codes - DICOM master list", code(coding.region),
                     code(coding.region_modifier)])


def _color(text) -> tuple[int, int, int] | None:
    try:
        rgb = [float(c) for c in str(text).split()]
    except ValueError:
        return None
    if len(rgb) != 3 or not all(0 <= c <= 1 for c in rgb):
        return None
    return tuple(int(round(c * 255)) for c in rgb)  # type: ignore[return-value]


# -- writing ---------------------------------------------------------------------------------------------

def write_segmentation(labels: LabelMap, path: str) -> None:
    """Write ``labels`` as a 3D Slicer segmentation (``.seg.nrrd``), atomically.

    One layer of uint8 on the labels' full grid (LPS space, gzip), one segment per label of the table and per
    other value present, with the keys Slicer writes (``Segment{i}_ID``, ``_Name``, ``_Color``, ``_LabelValue``,
    ``_Layer``, ``_Extent``, ``_Tags``, ``Segmentation_MasterRepresentation``, ...). Slicer has no "not
    annotated" value: 255 is written as 0 (background), as in every export. Names are written in UTF-8.
    """
    data = without_unannotated(labels.labels)
    xyz = data.transpose(2, 1, 0)
    lps = LPS_TO_RAS @ labels.affine
    fields = [f"{k}:={v}" for k, v in _segmentation_keys(xyz, nifti.name_labels(data, labels.table))]
    head = ["NRRD0004", "# Complete NRRD file format specification at:", "# http://teem.sourceforge.net/nrrd/format.html",
            "type: unsigned char", "dimension: 3", "space: left-posterior-superior",
            "sizes: " + " ".join(str(n) for n in xyz.shape),
            "space directions: " + " ".join(_vector(lps[:3, k]) for k in range(3)),
            "kinds: domain domain domain", "encoding: gzip", "space origin: " + _vector(lps[:3, 3]), *fields]
    text = ("\n".join(head) + "\n\n").encode("utf-8")
    gzip = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    body = gzip.compress(xyz.tobytes(order="F")) + gzip.flush()  # x varies fastest, as NRRD stores it

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(text)
            f.write(body)

    try:
        atomic.write_with(path, write)
    except OSError as exc:
        raise FormatError(f"cannot write {path}: {exc}") from exc


def _segmentation_keys(xyz: np.ndarray, table: LabelTable) -> list[tuple[str, str]]:
    keys = [("Segmentation_MasterRepresentation", "Binary labelmap"),
            ("Segmentation_SourceRepresentation", "Binary labelmap"),  # the name Slicer 5.4 and later use
            ("Segmentation_ContainedRepresentationNames", "Binary labelmap|"),
            ("Segmentation_ReferenceImageExtentOffset", "0 0 0")]
    for i, label in enumerate(table):
        key = f"Segment{i}_"
        keys += [(key + "ID", f"Segment_{label.value}"), (key + "Name", " ".join(label.name.split())),
                 (key + "NameAutoGenerated", "0"), (key + "Color", " ".join(f"{c / 255:.6g}" for c in label.color)),
                 (key + "ColorAutoGenerated", "0"), (key + "LabelValue", str(label.value)), (key + "Layer", "0"),
                 (key + "Extent", _extent(xyz == label.value)), (key + "Tags", f"Segmentation.Status:inprogress|TerminologyEntry:{_terminology_entry(label)}|")]
    return keys


def _vector(v: np.ndarray) -> str:
    return "(" + ",".join(repr(float(c) + 0.0) for c in v) + ")"


def _extent(mask: np.ndarray) -> str:
    """``x0 x1 y0 y1 z0 z1`` of a mask indexed (x, y, z); Slicer's empty extent ``0 -1 0 -1 0 -1`` when empty."""
    if not mask.any():
        return "0 -1 0 -1 0 -1"
    bounds = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        bounds += [int(hit[0]), int(hit[-1])]
    return " ".join(map(str, bounds))
