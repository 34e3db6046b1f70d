"""The autosave journal of one series' labels: an append-only file of checksummed records.

Each record holds the full content of the slices an edit changed (zlib-compressed) and the reviewed /
test flags after it. Appending one record and calling fsync takes a few milliseconds, so the journal is
written at the end of every stroke: a crash or ``kill -9`` loses at most the stroke in progress.

Layout::

    b"UNETGUI-JOURNAL 1\\n" + one JSON line {"series": id, "shape": [z, y, x], "base": token}
    then records: b"UJR1" + uint32 length + uint32 crc32(payload) + payload
    payload: uint32 n + n bytes JSON {"slices": [...], "reviewed": "0101..", "test": "00.."} + zlib(planes)

``base`` is the token of the label snapshot the journal continues; a journal whose base differs from the
snapshot's (a crash between writing a new snapshot and starting a fresh journal) is already contained in
that snapshot and is ignored. Reading stops at the first torn or corrupt record.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from unetgui.core.errors import FormatError
from unetgui.formats.atomic import write_bytes

MAGIC = b"UNETGUI-JOURNAL 1\n"
RECORD = b"UJR1"
_HEAD = struct.Struct("<4sII")


@dataclass
class Record:
    slices: tuple[int, ...]
    planes: np.ndarray  # (n, y, x) uint8
    reviewed: np.ndarray
    test: np.ndarray


def _bits(flags: np.ndarray) -> str:
    return "".join("1" if f else "0" for f in np.asarray(flags, bool))


def _flags(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), np.uint8) == ord("1")


class Journal:
    """Append edits of one series; :func:`replay` reads them back."""

    def __init__(self, path: str, series: str, shape: tuple[int, int, int], base: str, resume: bool = False) -> None:
        """A fresh journal after snapshot ``base``; with ``resume``, continue an existing journal of that
        snapshot (a torn tail left by a crash is cut off first, so later records stay reachable)."""
        self.path, self.series, self.shape, self.base = path, series, tuple(int(n) for n in shape), base
        records, end = scan(path, base, self.shape) if resume else ([], 0)
        if end:
            with open(path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
            self.records = len(records)
        else:
            header = MAGIC + json.dumps({"series": series, "shape": list(self.shape), "base": base}).encode() + b"\n"
            write_bytes(path, header)  # a fresh journal replaces the old one atomically
            self.records = 0
        self._file = open(path, "ab")  # noqa: SIM115 - kept open for appends, closed in close()

    def append(self, slices, planes: np.ndarray, reviewed: np.ndarray, test: np.ndarray) -> None:
        """Write one record and fsync it (durable when this returns)."""
        slices = tuple(int(z) for z in slices)
        planes = np.ascontiguousarray(planes, np.uint8)
        if planes.shape != (len(slices), *self.shape[1:]):
            raise ValueError(f"planes {planes.shape} do not fit slices {slices} of {self.shape}")
        meta = json.dumps({"slices": list(slices), "reviewed": _bits(reviewed), "test": _bits(test)}).encode()
        payload = struct.pack("<I", len(meta)) + meta + zlib.compress(planes.tobytes(), 1)
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


def replay(path: str, base: str, shape: tuple[int, int, int]) -> list[Record]:
    """The intact records of the journal at ``path`` that continue snapshot ``base`` (else none)."""
    return scan(path, base, shape)[0]


def scan(path: str, base: str, shape: tuple[int, int, int] | None) -> tuple[list[Record], int]:
    """The intact records and the byte offset where they end (0: no usable journal for ``base``).
    ``shape`` None: the journal's own (to count records without reading the snapshot's labels)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    if not data.startswith(MAGIC):
        return [], 0
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return [], 0
    try:
        header = json.loads(data[len(MAGIC):end])
    except ValueError:
        return [], 0
    if shape is None:
        shape = tuple(header.get("shape", ()))
    if header.get("base") != base or len(shape) != 3 or tuple(header.get("shape", ())) != tuple(shape):
        return [], 0
    records, pos, plane_bytes = [], end + 1, shape[1] * shape[2]
    while pos + _HEAD.size <= len(data):
        magic, length, crc = _HEAD.unpack_from(data, pos)
        payload = data[pos + _HEAD.size:pos + _HEAD.size + length]
        if magic != RECORD or len(payload) != length or zlib.crc32(payload) != crc:
            break  # torn tail of a killed write: everything before it is intact
        (n,) = struct.unpack_from("<I", payload)
        meta = json.loads(payload[4:4 + n])
        slices = tuple(meta["slices"])
        raw = zlib.decompress(payload[4 + n:])
        if len(raw) != len(slices) * plane_bytes:
            break
        planes = np.frombuffer(raw, np.uint8).reshape(len(slices), shape[1], shape[2])
        records.append(Record(slices, planes, _flags(meta["reviewed"]), _flags(meta["test"])))
        pos += _HEAD.size + length
    return records, pos
