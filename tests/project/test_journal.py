"""The autosave journal keeps what it can (issue 12, items 4 and 5): a damaged record costs that record only,
crafted records and headers are refused without a traceback, and a damaged journal is copied aside before
it is rewritten."""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

from unetgui.project import journal

SHAPE = (4, 8, 8)


def _write(path: str, n: int = 4) -> list[np.ndarray]:
    j = journal.Journal(path, "s1", SHAPE, "tok")
    rng = np.random.default_rng(0)
    planes = [rng.integers(0, 3, (1, 8, 8), dtype=np.uint8) for _ in range(n)]
    for k, p in enumerate(planes):
        j.append([k % SHAPE[0]], p, np.arange(4) == k % SHAPE[0], np.zeros(4, bool))
    j.close()
    return planes


def _record_offsets(path: str) -> list[int]:
    data = open(path, "rb").read()
    offsets, pos = [], data.find(b"\n", len(journal.MAGIC)) + 1
    while pos < len(data):
        offsets.append(pos)
        pos += journal._HEAD.size + journal._HEAD.unpack_from(data, pos)[1]
    return offsets


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))


def test_one_flipped_byte_costs_one_record_and_the_journal_is_copied_aside(tmp_path):
    path = str(tmp_path / "s1.journal")
    planes = _write(path)
    offsets = _record_offsets(path)
    _flip(path, offsets[1] + 30)  # inside record 2 of 4
    damaged = open(path, "rb").read()
    found = journal.scan(path, "tok", SHAPE)
    assert [r.slices for r in found.records] == [(0,), (2,), (3,)] and found.damaged == 1
    assert np.array_equal(found.records[1].planes, planes[2])
    assert "3 edit(s) recovered, 1 damaged part(s) skipped" in found.note

    resumed = journal.Journal(path, "s1", SHAPE, "tok", resume=True)  # editing continues
    assert resumed.records == 3 and open(resumed.kept_aside, "rb").read() == damaged
    resumed.append([1], planes[1], np.ones(4, bool), np.zeros(4, bool))
    resumed.close()
    again = journal.scan(path, "tok", SHAPE)
    assert [r.slices for r in again.records] == [(0,), (2,), (3,), (1,)] and not again.damaged and not again.note


def test_a_torn_tail_is_cut_and_nothing_else_is_lost(tmp_path):
    path = str(tmp_path / "s1.journal")
    _write(path, 3)
    with open(path, "r+b") as f:  # a write cut short by a kill
        f.truncate(os.path.getsize(path) - 5)
    found = journal.scan(path, "tok", SHAPE)
    assert len(found.records) == 2 and found.damaged == 1
    resumed = journal.Journal(path, "s1", SHAPE, "tok", resume=True)
    resumed.close()
    assert len(journal.replay(path, "tok", SHAPE)) == 2 and not journal.scan(path, "tok", SHAPE).damaged


def _crafted_record(meta, planes: bytes) -> bytes:
    """A record whose checksum holds: only its content is wrong."""
    text = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    payload = struct.pack("<I", len(text)) + text + zlib.compress(planes)
    return journal._HEAD.pack(journal.RECORD, len(payload), zlib.crc32(payload)) + payload


def test_records_that_are_not_what_they_claim_are_skipped_without_a_traceback(tmp_path):
    path = str(tmp_path / "s1.journal")
    _write(path, 1)
    plane = bytes(64)
    bad = [
        _crafted_record([0], plane),  # a list instead of an object
        _crafted_record(b"{not json", plane),
        _crafted_record({"slices": [7], "reviewed": "0000", "test": "0000"}, plane),  # slice out of range
        _crafted_record({"slices": [-1], "reviewed": "0000", "test": "0000"}, plane),
        _crafted_record({"slices": [1], "reviewed": "01", "test": "0000"}, plane),  # flags of the wrong length
        _crafted_record({"slices": [1], "reviewed": "0000", "test": "0000"}, bytes(64 * 1000)),  # planes too big
    ]
    good = _crafted_record({"slices": [3], "reviewed": "0001", "test": "0000"}, bytes(range(64)))
    with open(path, "ab") as f:
        f.write(b"".join(bad) + good)
    found = journal.scan(path, "tok", SHAPE)
    assert [r.slices for r in found.records] == [(0,), (3,)] and found.damaged == 1  # one damaged stretch
    assert found.records[1].planes.ravel().tolist() == list(range(64))


def test_a_header_that_is_not_an_object_is_reported_and_continued_fresh(tmp_path):
    path = str(tmp_path / "s1.journal")
    with open(path, "wb") as f:
        f.write(journal.MAGIC + b'["series", "s1"]\n')
    found = journal.scan(path, "tok", SHAPE)
    assert not found.records and found.header_damaged and "header is damaged" in found.note
    resumed = journal.Journal(path, "s1", SHAPE, "tok", resume=True)
    resumed.close()
    assert os.path.isfile(resumed.kept_aside) and not journal.scan(path, "tok", SHAPE).note


def test_the_project_reports_what_it_recovered(tmp_path, capsys):
    from project_fixtures import project_with_edits
    from unetgui import cli
    from unetgui.project.store import Project

    project, entry = project_with_edits(tmp_path / "proj", tmp_path / "ct.nii.gz", SHAPE, 4)
    path = project.journal_path(entry.id)
    _flip(path, _record_offsets(path)[1] + 30)
    saved = Project.open(project.root).read_labels(entry.id)
    assert saved.recovered_edits == 3 and saved.labels[[0, 2, 3]].all() and not saved.labels[1].any()
    assert "3 edit(s) recovered" in saved.note
    assert cli.main(["export", "--project", project.root, "--output", str(tmp_path / "out"), "--nifti"]) == 0
    assert f"series {entry.id}: the autosave journal was damaged" in capsys.readouterr().err


def test_markers_with_huge_lengths_are_skipped_without_copying(tmp_path):
    """Record markers claiming 4 GB payloads (a crafted file): each is refused from its header alone."""
    path = str(tmp_path / "s1.journal")
    planes = _write(path, 2)
    with open(path, "ab") as f:
        f.write((journal._HEAD.pack(journal.RECORD, 0xFFFFFFFF, 0) + b"x" * 4) * 20_000)
    found = journal.scan(path, "tok", SHAPE)
    assert len(found.records) == 2 and found.damaged == 1 and np.array_equal(found.records[1].planes, planes[1])
