"""Hostile NRRD, .nhdr, .seg.nrrd and label table files (issue 24), each crafted in tmp_path and run through the
public API and through the CLI: one header line never hangs or fills the memory, numbers of thousands of digits
are one-line errors (exit 1, never 3), text from files never reaches the terminal raw nor adds a line to a file
we write, a detached header reads no file outside its folder, and a broken table beside a label volume is a
note, not the end of the command."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import time

import nrrd as pynrrd
import numpy as np
import pytest

from unetgui import cli
from unetgui.core.errors import FormatError
from unetgui.core.volume import Label, LabelMap, LabelTable, Volume
from unetgui.formats import label_tables, nifti, nrrd
from unetgui.formats.inputs import ImageInput, open_image, open_labels

HEAD = "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\n"
BIG = "1" * 5000  # an integer of 5,000 digits
GEOMETRY = "space: RAS\nspace directions: (1,0,0) (0,1,0) (0,0,1)\nspace origin: (0,0,0)\n"


def _file(path, header: str, body: bytes = b"") -> str:
    path.write_bytes(header.encode("utf-8") + b"\n" + body)
    return str(path)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def image(tmp_path):
    """A 4 x 4 x 4 NIfTI image (1 mm, RAS) and a label volume on it, as files."""
    volume = Volume(np.arange(64, dtype=np.int16).reshape(4, 4, 4), np.eye(4), "CT")
    nifti.write_image(volume, str(tmp_path / "img.nii.gz"))
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    nifti.write_labels(LabelMap(labels, np.eye(4)), str(tmp_path / "lab.nii.gz"))
    return volume, str(tmp_path / "img.nii.gz"), str(tmp_path / "lab.nii.gz")


def _evaluate_image(capsys, image_path: str, labels: str) -> tuple[int, str, str]:
    return _run(capsys, "evaluate", "--image", image_path, "--truth", labels, "--prediction", labels)


# -- 1. hangs and memory blow-ups from one header line ---------------------------------------------------------

@pytest.mark.parametrize("header, body, message", [
    (HEAD + "encoding: raw\nline skip: 1000000000\n", bytes(64), "line skip 1,000,000,000, but only"),
    (HEAD + "encoding: raw\nline skip: 3\n", b"a\n" + bytes(64), "line skip 3, but the file ends after"),
    (HEAD + "encoding: raw\nbyte skip: 1000000000000000\n", bytes(64), "byte skip: the header claims"),
    (HEAD + "encoding: raw\nbyte skip: -1\n", bytes(10), "more than its data of 10 bytes"),
    (HEAD + "encoding: gzip\nbyte skip: 1000000000000\n", gzip.compress(bytes(64)), "more than its data"),
    (HEAD + "encoding: bzip2\nbyte skip: 100000000000\n", bz2.compress(bytes(1 << 20)), "more than its data"),
    ("NRRD0004\ntype: double\ndimension: 3\nsizes: 1024 1024 600\nencoding: gzip\n", gzip.compress(bytes(1 << 16)),
     "voxels of 8 bytes = 4.7 GiB is more than unetgui opens"),  # 6e8 voxels: within the voxel limit, not in bytes
    ("NRRD0004\ntype: uchar\ndimension: 3\nsizes: 1024 1024 600\nencoding: gzip\n", gzip.compress(bytes(1 << 16)),
     "more than its data"),
    (HEAD + "encoding: ascii\n", b"1 2 3", "64 ASCII values, more than its data of 5 bytes"),
    (HEAD + "encoding: ascii\n", b" ".join([b"1e999"] * 64), "not finite"),
    (HEAD + "encoding: ascii\n", b" ".join([b"300"] * 64), "do not fit NRRD type uint8"),
    (HEAD + "# x\n" * 100_001, b"", "more than 100,000"),
    (HEAD + "# " + "x" * (300 << 10) + "\n", b"", "longer than 256 KiB"),
    (HEAD + "encoding: raw\nkinds: domain domain\n", bytes(64), "2 kinds for 3 axes"),
    (HEAD + "encoding: raw\nspacings: 1 1\n", bytes(64), "2 spacings for 3 axes"),
    (HEAD + "encoding: raw\nspace: RAS\nspace directions: (1,0,0) (0,1,0) (0,0,1)\nspace origin: (1,2)\n", bytes(64),
     "space origin is not a 3-D point"),
    ("NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nencoding: raw\nendian: middle\n", bytes(128),
     "endian 'middle' is neither little nor big"),
])
def test_one_header_line_never_hangs_or_fills_the_memory(tmp_path, capsys, image, header, body, message):
    path = _file(tmp_path / "hostile.nrrd", header, body)
    started = time.monotonic()
    with pytest.raises(FormatError, match=message) as info:
        nrrd.read_image(path)
    assert "\n" not in str(info.value)
    rc, _, err = _evaluate_image(capsys, path, image[2])
    assert rc == 1 and message.split(",")[0].split(":")[0] in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - started < 20


def test_skips_and_compressed_data_within_bounds_still_read(tmp_path):
    data = np.arange(64, dtype=np.uint8)
    expected = data.reshape(4, 4, 4)  # (z, y, x): NRRD's x varies fastest
    cases = {
        "lines": (HEAD + "encoding: raw\nline skip: 2\n", b"junk\n" + b"x" * (3 << 20) + b"\n" + data.tobytes()),
        "bytes": (HEAD + "encoding: raw\nbyte skip: 7\n", bytes(7) + data.tobytes()),
        "tail": (HEAD + "encoding: raw\nbyte skip: -1\n", bytes(100) + data.tobytes()),
        "gzip": (HEAD + "encoding: gzip\nbyte skip: 5000000\n", gzip.compress(bytes(5_000_000) + data.tobytes())),
        "bzip2": (HEAD + "encoding: bzip2\nbyte skip: 3\n", bz2.compress(bytes(3) + data.tobytes() + bytes(1 << 20))),
    }
    for key, (header, body) in cases.items():
        volume = nrrd.read_image(_file(tmp_path / f"{key}.nrrd", header, body))
        assert np.array_equal(volume.voxels, expected), key


def test_a_bzip2_bomb_is_never_unpacked_beyond_what_the_header_claims(tmp_path):
    body = bz2.compress(bytes(256 << 20))  # 256 MiB of zeros in a few hundred bytes
    assert len(body) < 1000
    started = time.monotonic()
    volume = nrrd.read_image(_file(tmp_path / "bomb.nrrd", HEAD + "encoding: bzip2\n", body))
    assert volume.shape == (4, 4, 4) and time.monotonic() - started < 5


# -- 2. numbers of thousands of digits ------------------------------------------------------------------------

@pytest.mark.parametrize("header, message", [
    (f"NRRD0004\ntype: uchar\ndimension: {BIG}\nsizes: 4 4 4\nencoding: raw\n", "dimension: 1111"),
    (f"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 {BIG} 4\nencoding: raw\n", "sizes: 1111"),
    ("NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4 4\nencoding: raw\n", "dimension 3 but 4 sizes"),
    (HEAD + f"encoding: raw\nline skip: {BIG}\n", "line skip: 1111"),
    (HEAD + f"encoding: raw\nbyte skip: {BIG}\n", "byte skip: 1111"),
    (HEAD + f"encoding: raw\nSegment{BIG}_Name:=liver\n", "segment index: 1111"),
])
def test_header_numbers_of_thousands_of_digits_are_one_line_errors(tmp_path, capsys, header, message):
    path = _file(tmp_path / "digits.nrrd", header, bytes(64))
    with pytest.raises(FormatError, match=message) as info:
        nrrd.describe(path)
    assert len(str(info.value)) < 300
    rc, out, err = _run(capsys, "info", path)
    assert rc == 1 and message in err and len(err.strip().splitlines()) == 1 and out == ""


@pytest.mark.parametrize("keys, message", [
    (f"Segment0_Name:=liver\nSegment0_LabelValue:={BIG}\n", "Segment0_LabelValue: 1111"),
    (f"Segment0_Name:=liver\nSegment0_Layer:={BIG}\n", "Segment0_Layer: 1111"),
    ("Segment0_Name:=liver\nSegment0_Layer:=3\n", "segment 0 is in layer 3, the file has 1"),
])
def test_segment_numbers_of_thousands_of_digits_are_one_line_errors(tmp_path, capsys, image, keys, message):
    path = _file(tmp_path / "seg.seg.nrrd", HEAD + GEOMETRY + "encoding: raw\n" + keys, bytes(64))
    with pytest.raises(FormatError, match=message):
        nrrd.read_labels(path)
    rc, _, err = _evaluate_image(capsys, image[1], path)
    assert rc == 1 and message in err


def test_a_segment_colour_of_thousands_of_digits_gets_a_default_colour(tmp_path):
    path = _file(tmp_path / "seg.seg.nrrd", HEAD + GEOMETRY + f"encoding: raw\nSegment0_Name:=liver\n"
                 f"Segment0_Color:={BIG} 0 0\n", bytes(64))
    labels, _ = nrrd.read_labels(path)
    assert labels.table.get(1).name == "liver"


@pytest.mark.parametrize("text, message", [
    (f"{BIG} liver 1 2 3 255\n", "label value: 1111"),
    (f"1 liver {BIG} 2 3 255\n", "colour: 1111"),
    (f"1 liver 1 2 3 {BIG}\n", "alpha: 1111"),
    (f'    {BIG}   255    0    0        1  1  1    "Liver"\n', "label value: 1111"),
    (f'    1   {BIG}    0    0        1  1  1    "Liver"\n', "colour: 1111"),
    ('    \u0663   255    0    0        1  1  1    "Liver"\n', "label value"),  # an Arabic-Indic digit 3
])
def test_table_numbers_of_thousands_of_digits_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    with pytest.raises(FormatError, match=message) as info:
        label_tables.read_table(str(tmp_path / "t.txt"))
    assert len(str(info.value)) < 300 and "\n" not in str(info.value)


@pytest.mark.parametrize("labels, message", [
    ({BIG: "liver"}, "label value: 1111"), ({"\u00b2": "liver"}, "neither"),
    ({"liver": [int("9" * 30)]}, "has value 9999"),
])
def test_dataset_json_numbers_are_one_line_errors(tmp_path, labels, message):
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, **labels}}))
    with pytest.raises(FormatError, match=message) as info:
        label_tables.dataset_json_table(str(tmp_path / "dataset.json"))
    assert len(str(info.value)) < 300


# -- 3. text from files ----------------------------------------------------------------------------------------

def test_control_characters_in_segment_names_reach_the_terminal_escaped(tmp_path, capsys, image):
    name = "\x1b[2J\x1b]0;owned\x07liver\u202e"
    tags = "TerminologyEntry:x~SCT^123^Tissue\x1b[31m~SCT^10200004^Liver\x1b[0m~^^~x~^^~^^|"
    path = _file(tmp_path / "ctl.seg.nrrd", HEAD + GEOMETRY + f"encoding: raw\nSegment0_Name:={name}\n"
                 f"Segment0_Tags:={tags}\n", bytes(64))
    rc, out, _ = _run(capsys, "info", path)
    assert rc == 0 and "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b[2J\\x1b]0;owned\\x07liver\\u202e" in out and "Liver\\x1b[0m" in out
    labels, _ = nrrd.read_labels(path)
    label = labels.table.get(1)
    assert label.name == "[2J ]0;owned liver" and label.code("type") == ("SCT", "10200004", "Liver [0m")


INJECTED = "liver\ndata file: /etc/passwd"


def _no_data_file(path: str) -> None:
    text = open(path, "rb").read().split(b"\n\n")[0].decode("utf-8")
    assert not any(line.startswith(("data file", "datafile")) for line in text.split("\n"))
    header, _ = nrrd._header(path)
    assert "data file" not in header and "datafile" not in header
    foreign = pynrrd.read_header(path)
    assert "data file" not in foreign and "datafile" not in foreign


def test_a_newline_in_a_name_or_code_meaning_never_injects_a_header_line(tmp_path):
    codes = (("category", "SCT", "123037004", "Anatomical Structure\ndata file: /etc/passwd"),
             ("type", "SCT", "10200004", INJECTED))
    table = LabelTable((Label(1, INJECTED, (200, 90, 60), codes), Label(2, "a\rb\x0bc\x85d\u2028e", (1, 2, 3))))
    data = np.zeros((4, 4, 4), np.uint8)
    data[1, 1, 1], data[2, 2, 2] = 1, 2
    path = str(tmp_path / "out.seg.nrrd")
    nrrd.write_segmentation(LabelMap(data, np.eye(4), table), path)
    _no_data_file(path)
    back, notes = nrrd.read_labels(path)
    assert np.array_equal(back.labels, data) and notes == ()
    assert back.table.get(1).name == "liver data file: /etc/passwd" and back.table.get(2).name == "a b c d e"
    assert back.table.get(1).code("type") == ("SCT", "10200004", "liver data file: /etc/passwd")
    foreign, header = pynrrd.read(path)
    assert np.array_equal(foreign.transpose(2, 1, 0), data)
    assert header["Segment0_Name"] == "liver data file: /etc/passwd"
    for text in (label_tables.itksnap_text(table), label_tables.slicer_text(table, "x\ny")):
        rows = [line for line in text.split("\n") if line.strip() and not line.startswith("#")]
        assert [row.split()[0] for row in rows] == ["0", "1", "2"]  # one line per label, no line of its own
        assert [row.split()[0] for row in rows if "passwd" in row] == ["1"]
        (tmp_path / "t.txt").write_text(text, encoding="utf-8")
        read = label_tables.read_table(str(tmp_path / "t.txt"))
        assert read.values == (1, 2) and "/etc/passwd" in read.get(1).name.replace("_", " ")


def test_an_exported_seg_nrrd_and_tables_of_a_crafted_segmentation_hold_no_injected_line(tmp_path, capsys, image):
    _, img, _ = image
    name = "liver\u2028data file: /etc/passwd\x85\x1c\x0b\x0cx"  # line breaks of str.splitlines, not of NRRD
    src = _file(tmp_path / "crafted.seg.nrrd", HEAD + GEOMETRY + f"encoding: raw\nSegment0_Name:={name}\n",
                bytes(21) + b"\x01" + bytes(42))
    rc, out, _ = _run(capsys, "export", "--input", img, "--labels", src, "--output", str(tmp_path / "out"),
                      "--seg-nrrd", "--nifti")
    assert rc == 0
    paths = out.split()
    (seg,) = [p for p in paths if p.endswith(".seg.nrrd")]
    _no_data_file(seg)
    back, _ = nrrd.read_labels(seg)
    assert back.table.get(1).name == "liver data file: /etc/passwd x"
    for table in [p for p in paths if p.endswith((".itksnap.txt", ".ctbl"))]:
        lines = [line for line in open(table, encoding="utf-8").read().split("\n")
                 if line.strip() and not line.startswith("#")]
        assert len(lines) == 2 and label_tables.read_table(table).values == (1,)


# -- 4. files that point elsewhere -----------------------------------------------------------------------------

def _nhdr(folder, data_file: str) -> str:
    return _file(folder / "x.nhdr", HEAD + GEOMETRY + f"encoding: raw\ndata file: {data_file}\n")


@pytest.mark.parametrize("data_file, message", [
    ("ABSOLUTE", "is not in the header's folder"),
    ("../secret.raw", "is not in the header's folder"),
    ("sub/../../secret.raw", "is not in the header's folder"),
    ("link.raw", "is a link out of the header's folder"),
    ("LIST", "data split over several files"),
    ("slice%03d.raw 0 9 1", "data split over several files"),
])
def test_a_detached_header_reads_no_file_outside_its_folder(tmp_path, capsys, image, data_file, message):
    (tmp_path / "secret.raw").write_bytes(bytes(range(64)))
    folder = tmp_path / "case"
    folder.mkdir()
    os.symlink(tmp_path / "secret.raw", folder / "link.raw")
    path = _nhdr(folder, str(tmp_path / "secret.raw") if data_file == "ABSOLUTE" else data_file)
    with pytest.raises(FormatError, match=message) as info:
        open_image(path)
    assert "\n" not in str(info.value)
    rc, _, err = _evaluate_image(capsys, path, image[2])
    assert rc == 1 and message in err


def test_a_detached_header_reads_a_data_file_beside_or_below_it(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.raw").write_bytes(bytes(range(64)))
    os.symlink("sub/x.raw", tmp_path / "inside.raw")  # a link that stays in the folder is fine
    for data_file in ("sub/x.raw", "./sub/x.raw", "inside.raw"):
        volume = nrrd.read_image(_nhdr(tmp_path, data_file))
        assert np.array_equal(volume.voxels.ravel(), np.arange(64)), data_file
    os.mkfifo(tmp_path / "fifo.raw")
    with pytest.raises(FormatError, match="not a regular file"):
        nrrd.read_image(_nhdr(tmp_path, "fifo.raw"))


# -- 5. a stray file next to the data --------------------------------------------------------------------------

@pytest.mark.parametrize("sidecar, content", [
    ("lab.itksnap.txt", f'    {BIG}   255    0    0        1  1  1    "Liver"\n'),
    ("lab.ctbl", f"1 liver {BIG} 0 0 255\n"),
    ("lab.txt", "\x1b[31m not a table \x1b[0m\n"),
    ("lab_labels.txt", b"\xff\xfe\0\0binary"),
    ("dataset.json", json.dumps({"labels": {"\u00b2": "liver"}})),
    ("dataset.json", json.dumps({"labels": {BIG: "liver"}})),
    ("dataset.json", '{"labels": {"liver": ' + BIG + "}}"),
    ("dataset.json", "{" * 100 + "broken"),
])
def test_a_broken_table_beside_a_nifti_is_a_note_not_the_end(tmp_path, capsys, image, sidecar, content):
    volume, img, lab = image
    target = tmp_path / sidecar
    target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    labels, notes = open_labels(lab, ImageInput(img, volume, "nifti"))
    assert labels.table.get(1).name == "Label 1" and len(notes) == 1 and sidecar in notes[0]
    assert "\x1b" not in notes[0] and "\n" not in notes[0]
    rc, out, err = _run(capsys, "export", "--input", img, "--labels", lab, "--output", str(tmp_path / "out"), "--nifti")
    assert rc == 0 and f"label names from {sidecar} not used" in err and "\x1b" not in err
    assert _evaluate_image(capsys, img, lab)[0] == 0


def test_a_broken_table_beside_a_nrrd_label_map_is_a_note_not_the_end(tmp_path, capsys, image):
    volume, img, _ = image
    data = np.zeros((4, 4, 4), np.uint8)
    data[1, 1, 1] = 1
    path = _file(tmp_path / "lab.nrrd", HEAD + GEOMETRY + "encoding: raw\n", data.tobytes())
    (tmp_path / "lab.ctbl").write_text(f"1 liver 1 2 3 {BIG}\n")
    os.mkfifo(tmp_path / "lab.itksnap.txt")  # never opened: a read would block
    labels, notes = open_labels(path, ImageInput(img, volume, "nifti"))
    assert labels.table.get(1).name == "Label 1" and len(notes) == 1 and "lab.ctbl not used" in notes[0]
    rc, _, err = _run(capsys, "export", "--input", img, "--labels", path, "--output", str(tmp_path / "out"), "--nifti")
    assert rc == 0 and "lab.ctbl not used" in err


def test_a_4d_nrrd_with_fewer_kinds_than_axes_is_one_line(tmp_path):
    """Found in review: with space directions, a short kinds list was indexed per axis (IndexError, exit 3)."""
    from unetgui import cli

    path = tmp_path / "b.nrrd"
    path.write_bytes(b"NRRD0004\ntype: short\ndimension: 4\nsizes: 2 2 2 2\n"
                     b"space directions: (1,0,0) (0,1,0) (0,0,1) none\nkinds: domain\nencoding: raw\n"
                     b"endian: little\n\n" + bytes(32))
    assert cli.main(["convert", "--input", str(path), "--output", str(tmp_path / "o.nii.gz")]) == 1
