"""The autosave journal of one series' labels: an append-only file of checksummed records.

Each record holds the full content of the slices an edit changed (zlib-compressed) and the reviewed /
test flags after it. Appending one record and calling fsync takes a few milliseconds, so the journal is
written at the end of every stroke: a crash or ``kill -9`` loses at most the stroke in progress.

Layout::

    b"UNETGUI-JOURNAL 1\\n" + one JSON line {"series": id, "shape": [z, y, x], "base": token}
    then records: b"UJR1" + uint32 length + uint32 crc32(payload) + payload
    payload: uint32 n + n bytes JSON {"slices": [...], "reviewed": "0101..", "test": "00.."} + zlib(planes)

A record of an edit in a coronal or sagittal plane holds a 3-D box instead of whole slices:
``{"box": [z0, y0, x0, depth, height, width], ...}`` + zlib(the box's labels), so that a stroke across 300
axial slices costs kilobytes, not 300 slices. Records carry the review flags of the coronal and sagittal
planes too (``"coronal"``, ``"sagittal"``: bit strings) and the axial slices a segmentation wrote
(``"predicted"``), each absent from journals written before it was kept. A record with ``"annotated": 1``
holds the annotation mask of its slices or box after the labels (one byte per voxel, 0 or 1: the voxels the
user's strokes annotated, core/session.py); records without it leave the mask as it was.

``base`` is the token of the label snapshot the journal continues; a journal whose base differs from the
snapshot's (a crash between writing a new snapshot and starting a fresh journal) is already contained in
that snapshot and is ignored.

Damage (a flipped bit, a torn write, a crafted file) never costs more than the damaged records: records
are checksummed and self-delimiting, so reading skips a bad one and resynchronises on the next record
marker whose checksum holds. A record whose checksum holds but whose content does not fit the series
(slice out of range, flags of the wrong length, JSON that is not an object) counts as damaged too. When
a damaged journal is continued, it is first copied aside (``<name>.damaged-<time>``), then rewritten with
its intact records; :attr:`JournalScan.note` tells the user what was kept.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from unetgui.core import atomic
from unetgui.core.errors import FormatError

MAGIC = b"UNETGUI-JOURNAL 1\n"
RECORD = b"UJR1"
_HEAD = struct.Struct("<4sII")


@dataclass
class Record:
    slices: tuple[int, ...]
    planes: np.ndarray  # (n, y, x) uint8: the slices; or the box's labels (depth, height, width)
    reviewed: np.ndarray
    test: np.ndarray
    origin: tuple[int, int, int] | None = None  # (z0, y0, x0) of the box; None: whole slices
    coronal: np.ndarray | None = None  # review flags of the coronal planes (y); None: not recorded
    sagittal: np.ndarray | None = None  # and of the sagittal planes (x)
    predicted: np.ndarray | None = None  # axial slices a segmentation wrote; None: not recorded
    marks: np.ndarray | None = None  # the annotation mask of the slices or box (bool, shape of planes); None: not recorded

    def apply(self, labels: np.ndarray, annotated: np.ndarray | None = None) -> None:
        """Write this record's labels into the label volume (and its marks into the ``annotated`` mask)."""
        if self.origin is None:
            where = (list(self.slices),)
        else:
            z, y, x = self.origin
            d, h, w = self.planes.shape
            where = (slice(z, z + d), slice(y, y + h), slice(x, x + w))
        labels[where] = self.planes
        if annotated is not None and self.marks is not None:
            annotated[where] = self.marks


def _bits(flags: np.ndarray) -> str:
    return "".join("1" if f else "0" for f in np.asarray(flags, bool))


def _is_bits(value, n: int) -> bool:
    """A flag string as :func:`_bits` writes it for ``n`` planes."""
    return isinstance(value, str) and len(value) == n and set(value) <= {"0", "1"}


def _flags(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), np.uint8) == ord("1")


@dataclass
class JournalScan:
    """What reading a journal found."""

    records: list[Record] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)  # byte range of each intact record
    header_end: int = 0  # 0: no usable journal for this snapshot (absent, another snapshot's, or damaged)
    damaged: int = 0  # damaged stretches skipped (a torn tail included)
    header_damaged: bool = False

    @property
    def end(self) -> int:
        """Where the intact data ends (appends continue here when nothing was damaged)."""
        return self.spans[-1][1] if self.spans else self.header_end

    @property
    def note(self) -> str:
        """For the user: empty when the journal was whole."""
        if self.header_damaged:
            return "the autosave journal's header is damaged: the edits after the last save could not be recovered"
        if not self.damaged:
            return ""
        return (f"the autosave journal was damaged: {len(self.records)} edit(s) recovered, {self.damaged} damaged "
                "part(s) skipped (a stroke cut short by a crash, or a disk error)")


class Journal:
    """Append edits of one series; :func:`replay` reads them back."""

    def __init__(self, path: str, series: str, shape: tuple[int, int, int], base: str, resume: bool = False) -> None:
        """A fresh journal after snapshot ``base``; with ``resume``, continue an existing journal of that
        snapshot (a torn tail left by a crash is cut off first, so later records stay reachable)."""
        self.path, self.series, self.shape, self.base = path, series, tuple(int(n) for n in shape), base
        found = scan(path, base, self.shape) if resume else JournalScan()
        self.kept_aside = ""  # where a damaged journal was copied before it was rewritten
        if found.damaged or found.header_damaged:
            self.kept_aside = keep_aside(path, "damaged")
        if found.header_end and not found.damaged:
            with open(path, "r+b") as f:
                f.truncate(found.end)
                os.fsync(f.fileno())
        else:  # fresh, or damaged: the header and the intact records, atomically
            header = MAGIC + json.dumps({"series": series, "shape": list(self.shape), "base": base}).encode() + b"\n"
            kept = b""
            if found.spans:
                with open(path, "rb") as f:
                    data = f.read()
                kept = b"".join(data[start:stop] for start, stop in found.spans)
            atomic.write_bytes(path, header + kept)
        self.records = len(found.records)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open for appends, closed in close()

    def append(self, slices, planes: np.ndarray, reviewed: np.ndarray, test: np.ndarray,
               reviewed_planes: tuple[np.ndarray, np.ndarray] | None = None, predicted: np.ndarray | None = None,
               marks: np.ndarray | None = None) -> None:
        """Write one record of whole slices (and their annotation ``marks``) and fsync it (durable when this
        returns)."""
        slices = tuple(int(z) for z in slices)
        planes = np.ascontiguousarray(planes, np.uint8)
        if planes.shape != (len(slices), *self.shape[1:]) or (marks is not None and np.shape(marks) != planes.shape):
            raise ValueError(f"planes {planes.shape} do not fit slices {slices} of {self.shape}")
        self._write({"slices": list(slices)}, planes, reviewed, test, reviewed_planes, predicted, marks)

    def append_box(self, origin: tuple[int, int, int], block: np.ndarray, reviewed: np.ndarray, test: np.ndarray,
                   reviewed_planes: tuple[np.ndarray, np.ndarray] | None = None, predicted: np.ndarray | None = None,
                   marks: np.ndarray | None = None) -> None:
        """Write one record of a 3-D box of labels (``block`` at ``origin``, and its annotation ``marks``)
        and fsync it."""
        block = np.ascontiguousarray(block, np.uint8)
        origin = tuple(int(v) for v in origin)
        if (block.ndim != 3 or not all(0 <= o and o + n <= s for o, n, s in zip(origin, block.shape, self.shape))
                or (marks is not None and np.shape(marks) != block.shape)):
            raise ValueError(f"box {block.shape} at {origin} does not fit {self.shape}")
        self._write({"slices": [], "box": [*origin, *block.shape]}, block, reviewed, test, reviewed_planes, predicted,
                    marks)

    def _write(self, head: dict, data: np.ndarray, reviewed: np.ndarray, test: np.ndarray,
               reviewed_planes: tuple[np.ndarray, np.ndarray] | None, predicted: np.ndarray | None = None,
               marks: np.ndarray | None = None) -> None:
        head = {**head, "reviewed": _bits(reviewed), "test": _bits(test)}
        if marks is not None:
            head["annotated"] = 1
            data = np.concatenate([data.ravel(), np.ascontiguousarray(marks, bool).ravel().view(np.uint8)])
        if reviewed_planes is not None:
            head["coronal"], head["sagittal"] = _bits(reviewed_planes[0]), _bits(reviewed_planes[1])
        if predicted is not None:
            head["predicted"] = _bits(predicted)
        meta = json.dumps(head).encode()
        payload = struct.pack("<I", len(meta)) + meta + zlib.compress(data.tobytes(), 1)
        end = self._file.tell()
        try:
            self._file.write(_HEAD.pack(RECORD, len(payload), zlib.crc32(payload)) + payload)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:  # disk full, I/O error: cut the torn record so later ones stay readable
            try:
                self._file.truncate(end)
                self._file.seek(end)
            except OSError:
                pass
            raise FormatError(f"autosave could not write {self.path}: {exc}") from exc
        self.records += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def keep_aside(path: str, why: str, move: bool = False) -> str:
    """Copy (or move) a journal to ``<path>.<why>-<time>`` (never deleted by unetgui); the new path."""
    aside = f"{path}.{why}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    if move:
        os.replace(path, aside)
    else:
        shutil.copyfile(path, aside)
    return aside


def replay(path: str, base: str, shape: tuple[int, int, int]) -> list[Record]:
    """The intact records of the journal at ``path`` that continue snapshot ``base`` (else none)."""
    return scan(path, base, shape).records


def scan(path: str, base: str, shape: tuple[int, int, int] | None) -> JournalScan:
    """The intact records of the journal at ``path`` if it continues snapshot ``base`` (see the module
    docstring). ``shape`` None: the journal's own (to count records without reading the snapshot)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return JournalScan()
    end = data.find(b"\n", len(MAGIC)) if data.startswith(MAGIC) else -1
    try:
        header = json.loads(data[len(MAGIC):end]) if end > 0 else None
    except (ValueError, RecursionError):
        header = None
    if not isinstance(header, dict) or not _is_shape(header.get("shape")):
        return JournalScan(header_damaged=bool(data))
    if shape is None:
        shape = tuple(header["shape"])
    if header.get("base") != base or tuple(header["shape"]) != tuple(shape):
        return JournalScan()  # another snapshot's journal: already in it
    found = JournalScan(header_end=end + 1)
    pos, bad = end + 1, False
    while pos < len(data):
        record = _record_at(data, pos, shape)
        if record is None:  # damaged: resynchronise on the next record marker
            bad = True
            pos = data.find(RECORD, pos + 1)
            if pos < 0:
                break
            continue
        found.damaged += bad
        bad = False
        length = _HEAD.size + _HEAD.unpack_from(data, pos)[1]
        found.records.append(record)
        found.spans.append((pos, pos + length))
        pos += length
    found.damaged += bad
    return found


def _is_shape(value) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(type(n) is int and n > 0 for n in value)


def _record_at(data: bytes, pos: int, shape: tuple[int, int, int]) -> Record | None:
    """The record at ``pos`` if it is intact and fits the series, else None."""
    if pos + _HEAD.size > len(data):
        return None
    magic, length, crc = _HEAD.unpack_from(data, pos)
    if magic != RECORD or length < 4 or pos + _HEAD.size + length > len(data):
        return None  # checked before any copy: a crafted length must not cost a pass over the file
    payload = memoryview(data)[pos + _HEAD.size:pos + _HEAD.size + length]
    if zlib.crc32(payload) != crc:
        return None
    (n,) = struct.unpack_from("<I", payload)
    try:
        meta = json.loads(bytes(payload[4:4 + n]))
        slices = tuple(meta["slices"])
        reviewed, test = meta["reviewed"], meta["test"]
        if (not all(type(z) is int and 0 <= z < shape[0] for z in slices) or len(set(slices)) != len(slices)
                or not (_is_bits(reviewed, shape[0]) and _is_bits(test, shape[0]))):
            return None
        coronal, sagittal, predicted = meta.get("coronal"), meta.get("sagittal"), meta.get("predicted")
        if (coronal is None) != (sagittal is None) or coronal is not None and not (
                _is_bits(coronal, shape[1]) and _is_bits(sagittal, shape[2])):
            return None
        if predicted is not None and not _is_bits(predicted, shape[0]):
            return None
        marked = meta.get("annotated", 0)
        if marked not in (0, 1) or type(marked) is not int:
            return None
        box = meta.get("box")
        if box is not None:
            if (slices or not isinstance(box, list) or len(box) != 6 or not all(type(v) is int for v in box)
                    or not all(0 <= o and 0 < d and o + d <= s for o, d, s in zip(box[:3], box[3:], shape))):
                return None
            expected = box[3] * box[4] * box[5]
        else:
            expected = len(slices) * shape[1] * shape[2]
        expected *= 1 + marked  # the labels, then the annotation mask
        inflate = zlib.decompressobj()
        raw = inflate.decompress(payload[4 + n:], expected + 1)  # never more than the slices can hold
    except (ValueError, TypeError, KeyError, RecursionError, zlib.error):
        return None
    if len(raw) != expected or not inflate.eof:
        return None
    data = np.frombuffer(raw, np.uint8)
    marks = None
    if marked:
        data, marks = data[:expected // 2], data[expected // 2:]
        if marks.max(initial=0) > 1:
            return None
    flags = (_flags(coronal), _flags(sagittal)) if coronal is not None else (None, None)
    made = None if predicted is None else _flags(predicted)
    shaped = tuple(box[3:]) if box is not None else (len(slices), shape[1], shape[2])
    marks = None if marks is None else marks.view(bool).reshape(shaped)
    return Record(slices if box is None else (), data.reshape(shaped), _flags(reviewed), _flags(test),
                  None if box is None else tuple(box[:3]), *flags, made, marks)
