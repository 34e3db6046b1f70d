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

Header and data are read with bounded reads: a header claiming more than the limits (:mod:`unetgui.core.limits`,
in bytes by data type) or than its data can hold is refused before anything is allocated; every number of the
header is parsed with a length cap, every skip is checked against the file before it is followed, and compressed
data is never unpacked beyond the size the header claims. A detached header reads only a data file beside it or
below it (:func:`_data_file`). Names from a file are kept on one line without control characters, and are shown
escaped (:mod:`unetgui.core.textsafe`).
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
from unetgui.core.textsafe import has_control, one_name, parse_float, parse_int, printable
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
_ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2",
              "ascii": "ascii", "text": "ascii", "txt": "ascii"}
_MAX_HEADER = 4 << 20  # Slicer's headers are a few kB, a hundred segments' tags some 100 kB
_MAX_HEADER_LINES = 100_000  # 254 segments of 10 keys each are 2,540 lines
_MAX_LINE = 256 << 10  # a segment's tags are some 500 characters
_MAX_DIMENSION = 16  # NRRD's own limit
_MAX_SIZE = (1 << 31) - 1  # per axis; the product is checked against the limits in bytes
_MAX_SKIP = 1 << 62  # a skip beyond the file is refused against the file's size
_MAX_SEGMENT_INDEX = 1_000_000
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
    """The parsed header and the byte offset where attached data starts.

    The header is read with bounds (:data:`_MAX_HEADER` bytes, :data:`_MAX_HEADER_LINES` lines of at most
    :data:`_MAX_LINE` characters); ``dimension``, ``sizes``, ``line skip`` and ``byte skip`` are parsed here with
    length caps and bounds (:func:`~unetgui.core.textsafe.parse_int`) and stored as ints."""
    limits.check_regular_file(path)
    name = printable(os.path.basename(path))
    try:
        with open(path, "rb") as f:
            head = f.read(_MAX_HEADER)
            more = bool(f.read(1))
    except FileNotFoundError:
        raise FormatError(f"{printable(path)}: no such file") from None
    except OSError as exc:
        raise FormatError(f"{printable(path)}: cannot be read ({printable(exc.strerror or exc)})") from exc
    if not head.startswith(b"NRRD000"):
        raise FormatError(f"{name}: not a NRRD file (no NRRD magic line)")
    lines, offset = _header_lines(head, more, name)
    fields = _raw_fields(lines, name)
    numbers = _header_numbers(fields, name)
    try:
        header = pynrrd.read_header([line + "\n" for line in lines] + ["\n"])
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, KeyError ... on malformed headers
        raise FormatError(f"{name}: not a readable NRRD header ({printable(exc)})") from exc
    for key in ("lineskip", "byteskip", "datafile"):
        if key in header:  # one spelling of each field from here on
            header[key.replace("skip", " skip").replace("file", " file")] = header.pop(key)
    header.update(numbers)
    return header, offset


def _header_lines(head: bytes, more: bool, name: str) -> tuple[list[str], int]:
    """The header's lines (split at LF only, as NRRD writes them; a CR before it dropped) up to the first blank
    line, and the offset after that line, where attached data starts. At most :data:`_MAX_HEADER_LINES` lines of
    :data:`_MAX_LINE` characters: the loop is bounded by both."""
    lines: list[str] = []
    pos = 0
    while True:
        cut = head.find(b"\n", pos)
        if cut < 0 and more:
            raise FormatError(f"{name}: the NRRD header is longer than {_MAX_HEADER >> 20} MiB (damaged)")
        raw = head[pos:] if cut < 0 else head[pos:cut]
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if len(line) > _MAX_LINE:
            raise FormatError(f"{name}: NRRD header line {len(lines) + 1} is longer than {_MAX_LINE >> 10} KiB "
                              "(damaged)")
        if lines and not line.rstrip():  # a blank line ends the header (pynrrd's rule, trailing blanks ignored)
            return lines, (len(head) if cut < 0 else cut + 1)
        lines.append(line)
        if len(lines) > _MAX_HEADER_LINES:
            raise FormatError(f"{name}: the NRRD header has more than {_MAX_HEADER_LINES:,} lines (damaged)")
        if cut < 0:  # a detached header without a blank line: the whole file
            return lines, len(head)
        pos = cut + 1


def _raw_fields(lines: list[str], name: str) -> dict[str, str]:
    """The header's ``key: value`` (and ``key:=value``) lines as text."""
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, value = re.split(r":=?", line, maxsplit=1)
        fields.setdefault(key.strip(), value.strip())
    return fields


def _header_numbers(fields: dict[str, str], name: str) -> dict[str, object]:
    """``dimension``, ``sizes``, ``line skip`` and ``byte skip``, parsed with bounds (sizes: one per axis)."""
    if "dimension" not in fields or "sizes" not in fields:
        missing = "dimension" if "dimension" not in fields else "sizes"
        raise FormatError(f"{name}: not a readable NRRD header (no {missing})")
    dimension = parse_int(fields["dimension"], f"{name}: dimension", 1, _MAX_DIMENSION)
    tokens = fields["sizes"].split()
    if len(tokens) != dimension:
        raise FormatError(f"{name}: dimension {dimension} but {len(tokens)} sizes")
    sizes = [parse_int(t, f"{name}: sizes", 1, _MAX_SIZE) for t in tokens]
    line_skip = parse_int(fields.get("line skip", fields.get("lineskip", "0")), f"{name}: line skip", 0, _MAX_SKIP)
    byte_skip = parse_int(fields.get("byte skip", fields.get("byteskip", "0")), f"{name}: byte skip", -1, _MAX_SKIP)
    return {"dimension": dimension, "sizes": sizes, "line skip": line_skip, "byte skip": byte_skip}


def _data(path: str, header: dict, offset: int) -> np.ndarray:
    name = printable(os.path.basename(path))
    sizes = list(header["sizes"])
    if len(sizes) not in (3, 4):
        raise FormatError(f"{name}: {len(sizes)}-D NRRD is not supported (expected a 3-D volume)")
    dtype = _DTYPES.get(str(header.get("type", "")).strip().lower())
    if dtype is None:
        raise FormatError(f"{name}: NRRD type '{printable(header.get('type'), 40)}' is not supported")
    spatial = [n for n, axis in zip(sizes, _spatial_axes(header, name)) if axis]
    limits.check_shape(tuple(reversed(spatial)), name, itemsize=dtype.itemsize)
    limits.check_shape((math.prod(sizes) // (spatial[0] * spatial[1]), spatial[1], spatial[0]), name,  # all layers
                       itemsize=dtype.itemsize)
    if dtype.itemsize > 1:
        endian = str(header.get("endian", "little")).strip().lower()
        if endian not in ("little", "big"):
            raise FormatError(f"{name}: NRRD endian '{printable(endian, 40)}' is neither little nor big")
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    count = math.prod(sizes)
    data_path, start = _data_file(path, header, offset)
    raw = _read_bytes(data_path, start, header, count * dtype.itemsize, dtype, name)
    array = raw if isinstance(raw, np.ndarray) else np.frombuffer(raw, dtype, count)  # writable: a bytearray
    return array.astype(dtype.newbyteorder("="), copy=False).reshape(sizes[::-1]).T


def _data_file(path: str, header: dict, offset: int) -> tuple[str, int]:
    """Where the voxels are: after the header (``offset``), or in the one data file a detached header names.

    A detached header (``.nhdr``, or any NRRD with ``data file``) may name its data file only by a relative
    path in the header's folder or below it: an absolute path, a ``..`` part or a link that resolves outside
    the header's folder is refused, and so is data split over several files (``LIST`` or a ``%d`` pattern).
    So a header from elsewhere cannot make unetgui read any other file on the machine.
    """
    detached = header.get("data file")
    if detached is None:
        return path, offset
    name = printable(os.path.basename(path))
    detached = str(detached).strip()
    shown = printable(detached, 60)
    if detached.upper().startswith("LIST") or " " in detached or "%" in detached:
        raise FormatError(f"{name}: data split over several files ('{shown}') is not supported")
    parts = re.split(r"[\\/]", detached)
    if not detached or os.path.isabs(detached) or detached.startswith("\\") or ".." in parts:
        raise FormatError(f"{name}: its data file '{shown}' is not in the header's folder (a detached header may "
                          "name only a file beside it or below it)")
    folder = os.path.dirname(os.path.abspath(path))
    full = os.path.join(folder, detached)
    real_folder = os.path.realpath(folder)
    if os.path.commonpath([os.path.realpath(full), real_folder]) != real_folder:
        raise FormatError(f"{name}: its data file '{shown}' is a link out of the header's folder (a detached header "
                          "may name only a file beside it or below it)")
    if not os.path.exists(full):
        raise FormatError(f"{name}: its data file {shown} does not exist")
    if not limits.is_regular_file(full):
        raise FormatError(f"{name}: its data file {shown} is not a regular file")
    return full, 0


def _read_bytes(path: str, start: int, header: dict, need: int, dtype: np.dtype, name: str):
    """``need`` bytes of voxel data (or, for ASCII data, the parsed values); never more. Every skip and size
    from the header is checked against the file before it is followed."""
    encoding = str(header.get("encoding", "raw")).strip().lower()
    line_skip, byte_skip = int(header.get("line skip", 0)), int(header.get("byte skip", 0))
    if encoding not in _ENCODINGS:
        raise FormatError(f"{name}: NRRD encoding '{printable(encoding, 40)}' is not supported")
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(start)
        _skip_lines(f, line_skip, file_size, name)
        size = file_size - f.tell()
        kind = _ENCODINGS[encoding]
        if kind == "raw":
            avail = size if byte_skip == -1 else size - byte_skip
            if byte_skip > size:
                limits.check_within(f.tell(), byte_skip, file_size, f"{name}: byte skip")
            if need > avail:
                raise FormatError(f"{name}: the header claims {need:,} bytes of voxels, more than its data of "
                                  f"{avail:,} bytes can hold (truncated or damaged)")
            f.seek(file_size - need if byte_skip == -1 else f.tell() + byte_skip)
            data = bytearray(need)
            data = data[: f.readinto(data)]
        elif kind == "ascii":
            return _ascii_values(f, size, need // dtype.itemsize, dtype, name)
        else:
            skip = max(byte_skip, 0)  # of compressed data: counted in the unpacked bytes
            if need + skip > limits.MAX_BYTES or (kind == "gzip" and need + skip > size * limits.GZIP_RATIO):
                raise FormatError(f"{name}: the header claims {need + skip:,} bytes of voxels, more than its data of "
                                  f"{size:,} bytes can hold (truncated or damaged)")
            data = _inflate(f, kind, need, skip, name)
    if len(data) < need:
        raise FormatError(f"{name}: the voxel data ends after {len(data):,} of {need:,} bytes (truncated)")
    return data


def _skip_lines(f, count: int, file_size: int, name: str) -> None:
    """Skip ``count`` lines (``line skip``): each line is at least a byte, and the file must hold them all."""
    if count > file_size - f.tell():
        raise FormatError(f"{name}: line skip {count:,}, but only {file_size - f.tell():,} bytes follow the header")
    for k in range(count):
        while True:  # a line longer than a chunk is still one line; the whole loop reads at most the file
            line = f.readline(_CHUNK)
            if not line:
                raise FormatError(f"{name}: line skip {count:,}, but the file ends after {k:,} lines")
            if line.endswith(b"\n"):
                break


def _ascii_values(f, size: int, count: int, dtype: np.dtype, name: str) -> np.ndarray:
    """``count`` numbers written as text (each at least one character and a separator)."""
    if count > _MAX_ASCII_VALUES:
        raise FormatError(f"{name}: {count:,} voxels as ASCII text; unetgui reads ASCII NRRD up "
                          f"to {_MAX_ASCII_VALUES:,} (save it as raw or gzip)")
    if count > (size + 1) // 2:
        raise FormatError(f"{name}: the header claims {count:,} ASCII values, more than its data of {size:,} bytes "
                          "can hold (truncated or damaged)")
    try:
        values = np.array(f.read(min(size, _MAX_ASCII_VALUES * 32)).split(), dtype=np.float64)
    except ValueError as exc:
        raise FormatError(f"{name}: the ASCII voxel data holds something other than numbers") from exc
    if values.size != count:
        raise FormatError(f"{name}: {values.size:,} ASCII values, the header claims {count:,}")
    if not np.isfinite(values).all():
        raise FormatError(f"{name}: the ASCII voxel data holds values that are not finite numbers")
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    if info is not None and values.size and (values.min() < info.min or values.max() > info.max):
        raise FormatError(f"{name}: ASCII values {values.min():g}..{values.max():g} do not fit NRRD type {dtype.name}")
    return values.astype(dtype.newbyteorder("="))


def _inflate(f, kind: str, need: int, skip: int, name: str) -> bytearray:
    """Decompress ``need`` bytes after ``skip`` unpacked bytes (dropped as they come), never more: a small file
    cannot unpack into all of the memory."""
    gzip = kind == "gzip"
    unpack = zlib.decompressobj(zlib.MAX_WBITS | 32) if gzip else bz2.BZ2Decompressor()
    out = bytearray()
    try:
        while len(out) < need:
            if gzip:
                chunk = unpack.unconsumed_tail or f.read(_CHUNK)
            else:
                chunk = f.read(_CHUNK) if unpack.needs_input else b""
            if not chunk and (gzip or unpack.needs_input):
                break  # the file ended
            want = min(skip if skip else need - len(out), _CHUNK * 16)
            piece = unpack.decompress(chunk, want)
            if skip:
                skip -= len(piece)  # never more than ``want`` came out
            else:
                out += piece
            if unpack.eof:
                break
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        raise FormatError(f"{name}: the compressed voxel data is damaged ({printable(exc)})") from exc
    return out


def _spatial_axes(header: dict, name: str) -> list[bool]:
    """Which array axes are space (domain) axes: those with a space direction, else by ``kinds``."""
    n = int(header["dimension"])
    kinds = header.get("kinds")
    if kinds is not None and len(kinds) != n:  # checked here once: every later use of kinds indexes it by axis
        raise FormatError(f"{name}: {len(kinds)} kinds for {n} axes")
    directions = header.get("space directions")
    if directions is not None:
        rows = _floats(directions, name, "space directions")
        if rows.ndim != 2 or rows.shape[0] != n:
            raise FormatError(f"{name}: {rows.shape[0] if rows.ndim else 0} space directions for {n} axes")
        axes = [bool(np.isfinite(rows[k]).all()) for k in range(n)]
    else:
        axes = [str(k).lower() in ("domain", "space") for k in kinds or ["domain"] * n]
    if sum(axes) != 3:
        raise FormatError(f"{name}: {sum(axes)} space axes; unetgui reads 3-D volumes")
    return axes


def _affine(header: dict, name: str, warnings: list[str]) -> np.ndarray:
    """RAS affine of the space axes (index ``(x, y, z, 1)`` -> mm)."""
    axes = _spatial_axes(header, name)
    affine = np.eye(4)
    directions = header.get("space directions")
    if directions is None:
        spacings = _floats(header.get("spacings", [1.0] * len(axes)), name, "spacings")
        if spacings.shape != (len(axes),):
            raise FormatError(f"{name}: {spacings.size} spacings for {len(axes)} axes")
        spacings = spacings[axes]
        spacings = np.where(np.isfinite(spacings) & (spacings > 0), spacings, 1.0)
        warnings.append(f"{name}: no space directions: {' x '.join(f'{s:g}' for s in spacings)} mm voxels without "
                        "orientation are assumed")
        affine[:3, :3] = np.diag(spacings)
        return affine
    space = str(header.get("space", "")).strip().lower()
    if space not in _SPACES:
        raise FormatError(f"{name}: NRRD space '{printable(header.get('space'), 60)}' is not supported (RAS, LPS or "
                          "LAS)"
                          if space else f"{name}: the NRRD header has space directions but no space (RAS, LPS, LAS)")
    rows = _floats(directions, name, "space directions")[axes]
    if rows.shape != (3, 3):
        raise FormatError(f"{name}: space directions are not 3-D vectors")
    origin = _floats(header.get("space origin", [0.0, 0.0, 0.0]), name, "space origin")
    if origin.shape != (3,):
        raise FormatError(f"{name}: the space origin is not a 3-D point")
    affine[:3, :3] = rows.T
    affine[:3, 3] = origin
    affine = np.diag([*_SPACES[space], 1.0]) @ affine
    if not (np.isfinite(affine).all() and abs(np.linalg.det(affine[:3, :3])) > 1e-9):
        raise FormatError(f"{name}: degenerate space directions (no valid geometry)")
    return affine


def _floats(value, name: str, what: str) -> np.ndarray:
    """A numeric header field (as pynrrd parsed it) as a float array; a one-line error when it is not one."""
    try:
        return np.asarray(value, float)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{name}: {what} are not numbers") from exc


def describe(path: str) -> str:
    """From the header alone: size, type, space; for a Slicer segmentation a line per segment (name, label
    value, layer, and what its terminology entry says it is). Text from the file is shown escaped
    (:func:`~unetgui.core.textsafe.printable`)."""
    header, _ = _header(path)
    name = printable(os.path.basename(path))
    sizes = " x ".join(str(int(n)) for n in header["sizes"])
    lines = [f"NRRD {printable(path)}: {sizes} voxels, {printable(header.get('type'), 60)}, "
             f"space {printable(header.get('space', 'none'), 60)}"]
    if is_segmentation(header):
        for k, (i, key) in enumerate(_segment_keys(header, name)):
            shown = printable(" ".join(str(header.get(key + "Name", "")).split())) or f"Segment {k + 1}"
            codes = _terminology(header.get(key + "Tags", ""), lambda f: " ".join(str(f).split()))  # shown escaped
            what = Label(1, "x", (0, 0, 0), codes).coded_as()
            value, layer = (printable(header.get(key + field, "?"), 40) for field in ("LabelValue", "Layer"))
            lines.append(f"  segment {k + 1}: {shown}, value {value} in layer {layer} "
                         f"({printable(what) or 'no terminology'})")
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
    keys = _segment_keys(header, name)
    segments = [_segment(header, i, key, k, layers.shape[0], name) for k, (i, key) in enumerate(keys)]
    values = [value for value, *_ in segments]
    keep = layers.shape[0] == 1 and all(1 <= v <= MAX_LABEL for v in values) and len(set(values)) == len(values)
    numbers = values if keep else list(range(1, len(segments) + 1))
    table = LabelTable(tuple(Label(n, seg_name, color, _terminology(header.get(key + "Tags", "")))
                             for n, (_, key), (_, _, seg_name, color) in zip(numbers, keys, segments)))
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


def _segment_keys(header: dict, name: str) -> list[tuple[int, str]]:
    """``(index, "Segment{index}_")`` of every segment, by index (parsed with bounds), at most MAX_LABEL."""
    found = {m.group(1) for m in map(_SEGMENT_KEY.match, map(str, header)) if m}
    if len(found) > MAX_LABEL:
        raise FormatError(f"{name}: {len(found)} segments; unetgui holds up to {MAX_LABEL} labels")
    keys = [(parse_int(i, f"{name}: segment index", 0, _MAX_SEGMENT_INDEX), f"Segment{i}_") for i in found]
    return sorted(keys)


def _segment(header: dict, i: int, key: str, k: int, layers: int, name: str):
    """(label value, layer, name, colour) of segment ``i`` (the ``k``-th in the file, keys starting ``key``)."""
    value = parse_int(header.get(key + "LabelValue", "1"), f"{name}: {key}LabelValue", 0, _MAX_SIZE)
    layer = parse_int(header.get(key + "Layer", str(k if layers > 1 else 0)), f"{name}: {key}Layer", 0, _MAX_SIZE)
    if not 0 <= layer < layers:
        raise FormatError(f"{name}: segment {i} is in layer {layer}, the file has {layers}")
    seg_name = one_name(header.get(key + "Name", "")) or f"Segment {k + 1}"
    color = _color(header.get(key + "Color", header.get(key + "DefaultColor")))
    return value, layer, seg_name, color or default_color(k + 1)


def _terminology(tags, clean=None) -> tuple[tuple[str, str, str, str], ...]:
    """A segment's codes from the ``TerminologyEntry`` of its tags (``context~category~type~type modifier~
    anatomic context~anatomic region~region modifier``, each code ``scheme^value^meaning``); none when absent
    or without a category and a type. Each field is made one line (``clean``, by default :func:`~unetgui.core.textsafe.one_name`)."""
    clean = clean or one_name
    entry = next((t[len("TerminologyEntry:"):] for t in str(tags).split("|") if t.startswith("TerminologyEntry:")), "")
    parts = entry.split("~")
    if len(parts) < 3:
        return ()
    codes = []
    for role, k in (("category", 1), ("type", 2), ("modifier", 3), ("region", 5), ("region_modifier", 6)):
        fields = [clean(f) for f in parts[k].split("^")] if k < len(parts) else []
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
        if not c:
            return "^^"
        return "^".join(one_name(re.sub(r"[~^|]", " ", str(part))) for part in (c.scheme_designator, c.value, c.meaning))

    return "~".join(["Segmentation category and type - DICOM master list", code(coding.category), code(coding.type),
                     code(coding.modifier), "Anatomic codes - DICOM master list", code(coding.region),
                     code(coding.region_modifier)])


def _color(text) -> tuple[int, int, int] | None:
    """``Segment{i}_Color`` (three floats 0..1) as RGB 0..255; None when it is not that (a default is used)."""
    parts = str(text).split()
    if len(parts) != 3:
        return None
    try:
        rgb = [parse_float(c, "colour") for c in parts]
    except FormatError:
        return None
    if not all(0 <= c <= 1 for c in rgb):
        return None
    return tuple(int(round(c * 255)) for c in rgb)  # type: ignore[return-value]


# -- writing ---------------------------------------------------------------------------------------------

def write_segmentation(labels: LabelMap, path: str) -> None:
    """Write ``labels`` as a 3D Slicer segmentation (``.seg.nrrd``), atomically.

    One layer of uint8 on the labels' full grid (LPS space, gzip), one segment per label of the table and per
    other value present, with the keys Slicer writes (``Segment{i}_ID``, ``_Name``, ``_Color``, ``_LabelValue``,
    ``_Layer``, ``_Extent``, ``_Tags``, ``Segmentation_MasterRepresentation``, ...). Slicer has no "not
    annotated" value: 255 is written as 0 (background), as in every export. Names are written in UTF-8, on one
    line each: control characters (line breaks too) become spaces, so a name or a code meaning from another
    file cannot add a header line (``data file: ...``).
    """
    data = without_unannotated(labels.labels)
    xyz = data.transpose(2, 1, 0)
    lps = LPS_TO_RAS @ labels.affine
    fields = [f"{k}:={v}" for k, v in _segmentation_keys(xyz, nifti.name_labels(data, labels.table))]
    if any(has_control(field) for field in fields):  # every value is one line: no name can start a header line
        raise FormatError(f"cannot write {printable(path)}: a segment's text would break a header line")
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
        keys += [(key + "ID", f"Segment_{label.value}"), (key + "Name", one_name(label.name) or f"Label {label.value}"),
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
