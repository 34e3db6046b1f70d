"""Label tables of ITK-SNAP, 3D Slicer and nnU-Net: read, written, found next to a NIfTI, exported with it."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from conftest import DATA
from unetgui.core.errors import FormatError
from unetgui.core.volume import Label, LabelMap, LabelTable, Volume
from unetgui.formats import label_tables, nifti
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom_seg import read_dicom_seg
from unetgui.formats.export import ExportOptions, export
from unetgui.formats.inputs import ImageInput, open_labels
from unetgui.formats.label_tables import TableEntry

DCMQI = DATA / "dcmqi-ct-3slice-liver-seg"

# as ITK-SNAP 3.8 writes it (Segmentation > Export Label Descriptions), CRLF line ends as on Windows
ITKSNAP_FILE = """\
################################################\r
# ITK-SnAP Label Description File\r
# File format: \r
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\r
# Fields: \r
#    IDX:   Zero-based index \r
#    -R-:   Red color component (0..255)\r
#    -G-:   Green color component (0..255)\r
#    -B-:   Blue color component (0..255)\r
#    -A-:   Label transparency (0.00 .. 1.00)\r
#    VIS:   Label visibility (0 or 1)\r
#    IDX:   Label mesh visibility (0 or 1)\r
#  LABEL:   Label description \r
################################################\r
    0     0    0    0        0  0  0    "Clear Label"\r
    1   255    0    0        1  1  1    "Liver"\r
    2     0  255    0      0.5  1  0    "Right kidney"\r
    6   255    0  255        1  0  1    "Label 6"\r
"""

SLICER_FILE = """\
# Color table file /home/user/Slicer/Segmentation-label_ColorTable.ctbl
# 4 values
0 Background 0 0 0 0
1 liver 221 130 101 255
3 left_kidney 185 102 83 128
"""

TABLE = LabelTable((Label(1, "Liver", (200, 90, 60)), Label(2, "portal vein", (0, 151, 206)),
                    Label(17, "Tumour  \"A\"", (255, 255, 0))))


def test_itksnap_file_with_its_header_comments():
    entries = label_tables.parse_table(ITKSNAP_FILE, "snap.txt")
    assert [e.value for e in entries] == [0, 1, 2, 6]
    assert entries[2] == TableEntry(2, "Right kidney", (0, 255, 0), 0.5, True, False)
    assert entries[3].visible is False and entries[3].mesh_visible is True
    table = label_tables.table_of(entries)
    assert table.values == (1, 2, 6) and table.get(1) == Label(1, "Liver", (255, 0, 0))


def test_itksnap_round_trip_keeps_names_colours_alpha_and_visibility(tmp_path):
    entries = [TableEntry(1, "left kidney", (10, 20, 30), 0.5, False, True),
               TableEntry(2, "Liver", (255, 0, 0), 1.0, True, False),
               TableEntry(254, "a name with  spaces", (0, 0, 255), 0.0, True, True)]
    path = str(tmp_path / "labels.itksnap.txt")
    label_tables.write_itksnap(entries, path)
    text = open(path).read()
    assert '    2   255    0    0        1  1  0    "Liver"' in text
    assert '    0     0    0    0        0  0  0    "Clear Label"' in text  # ITK-SNAP's own line 0
    back = label_tables.read_entries(path)
    assert back[0].value == 0 and back[1:] == [*entries[:2], TableEntry(254, "a name with spaces", (0, 0, 255), 0.0)]
    table = label_tables.read_table(path)
    assert table.get(1).name == "left kidney" and table.values == (1, 2, 254)


def test_slicer_colour_table_round_trip_writes_whitespace_as_underscores(tmp_path):
    path = str(tmp_path / "labels.ctbl")
    label_tables.write_slicer(TABLE, path)
    lines = open(path).read().splitlines()
    assert lines[0].startswith("# Color table file") and lines[1] == "# 18 values"
    assert lines[2:] == ["0 Background 0 0 0 0", "1 Liver 200 90 60 255", "2 portal_vein 0 151 206 255",
                         "17 Tumour_\"A\" 255 255 0 255"]
    back = label_tables.read_entries(path)
    assert [(e.value, e.name, e.color, e.alpha) for e in back[1:]] == [
        (1, "Liver", (200, 90, 60), 1.0), (2, "portal_vein", (0, 151, 206), 1.0), (17, "Tumour_\"A\"", (255, 255, 0), 1.0)]
    alpha = [TableEntry(5, "half", (1, 2, 3), 128 / 255)]
    label_tables.write_slicer(alpha, path)
    assert label_tables.read_entries(path)[1].alpha == pytest.approx(128 / 255)


def test_a_slicer_file_is_told_from_its_content():
    entries = label_tables.parse_table(SLICER_FILE, "x.txt")
    assert [(e.value, e.name, e.color) for e in entries] == [
        (0, "Background", (0, 0, 0)), (1, "liver", (221, 130, 101)), (3, "left_kidney", (185, 102, 83))]
    assert entries[2].alpha == pytest.approx(128 / 255)
    # older Slicer writes unnamed entries as (none) and float colours; extra columns of newer ones are ignored
    old = label_tables.parse_table("0 Background 0 0 0 0\n1 (none) 0 0 0 0\n2 bone 241.0 214.0 145.0 255.0 extra\n")
    assert [(e.value, e.name, e.color) for e in old] == [(0, "Background", (0, 0, 0)), (2, "bone", (241, 214, 145))]


def _write(path, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def test_nnunet_dataset_json_v1_v2_and_regions(tmp_path):
    v2 = {"labels": {"background": 0, "liver": 1, "liver tumour": 2}, "channel_names": {"0": "CT"}}
    v1 = {"labels": {"0": "background", "1": "liver", "2": "cancer"}, "modality": {"0": "CT"}}
    regions = {"labels": {"background": 0, "whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": [3]},
               "regions_class_order": [1, 2, 3]}
    loose = {"labels": {"background": 0, "whole tumour": [1, 2, 3], "enhancing": 3, "edema": [2]}}
    read = {n: label_tables.dataset_json_table(_write(tmp_path / f"{n}.json", json.dumps(d)))
            for n, d in (("v2", v2), ("v1", v1), ("regions", regions), ("loose", loose))}
    assert [(lab.value, lab.name) for lab in read["v2"]] == [(1, "liver"), (2, "liver tumour")]
    assert [(lab.value, lab.name) for lab in read["v1"]] == [(1, "liver"), (2, "cancer")]
    assert [(lab.value, lab.name) for lab in read["regions"]] == [(1, "whole tumour"), (2, "tumour core"), (3, "enhancing")]
    assert [(lab.value, lab.name) for lab in read["loose"]] == [(2, "edema"), (3, "enhancing")]


@pytest.mark.parametrize("text, message", [
    ("", "no label lines"),
    ("# only comments\n", "no label lines"),
    ("1 liver 255 0\n", "line 1: not a label line"),
    ('    1   255    0    0        1  1  1    "Liver"\n2 kidney 0 255 0 255\n', "line 2: not an ITK-SNAP label line"),
    ("1 liver 255 0 0 255\n1 again 0 0 0 255\n", "listed twice"),
    ("300 big 255 0 0 255\n", "label value 300"),
    ("255 unannotated 255 0 0 255\n", "label value 255"),
    ("1 liver 999 0 0 255\n", "outside 0..255"),
    ('    1   255    0    0        7  1  1    "Liver"\n', "alpha 7.0 is outside"),
    ("".join(f"{i} l{i} 1 2 3 255\n" for i in range(300)), "300 label lines"),
])
def test_damaged_tables_are_one_line_format_errors(tmp_path, text, message):
    path = _write(tmp_path / "bad.txt", text)
    with pytest.raises(FormatError, match=message) as info:
        label_tables.read_table(path)
    assert "\n" not in str(info.value)


def test_binary_big_and_json_damaged_files(tmp_path):
    (tmp_path / "nul.txt").write_bytes(b"1 liver 255 0 0 255\n\0\0")
    with pytest.raises(FormatError, match="binary data"):
        label_tables.read_table(str(tmp_path / "nul.txt"))
    (tmp_path / "big.txt").write_bytes(b"#" * (label_tables.MAX_TABLE_BYTES + 1))
    with pytest.raises(FormatError, match="larger than"):
        label_tables.read_table(str(tmp_path / "big.txt"))
    with pytest.raises(FormatError, match="no such file|cannot be read"):
        label_tables.read_table(str(tmp_path / "missing.txt"))
    for text, message in (("{", "not valid JSON"), ("[1, 2]", "no \"labels\""), ('{"labels": {"a": "b"}}', "neither"),
                          ('{"labels": {"liver": 300}}', "value 300"), ("[" * 100_000, "not valid JSON")):
        with pytest.raises(FormatError, match=message):
            label_tables.dataset_json_table(_write(tmp_path / "dataset.json", text))


# -- NIfTI import and export ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dcmqi():
    (series,) = scan(str(DCMQI / "ct")).series
    volume = load_series(series)
    labels, _ = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), volume)
    return volume, labels


def _nifti(path, data_zyx: np.ndarray, affine) -> str:
    nib.save(nib.Nifti1Image(data_zyx.transpose(2, 1, 0), affine), str(path))
    return str(path)


@pytest.fixture
def grid():
    volume = Volume(np.zeros((4, 6, 5), np.int16), np.diag([0.8, 0.8, 2.0, 1.0]), "CT")
    data = np.zeros(volume.shape, np.uint8)
    data[1, 2:4, 1:3] = 1
    data[2, 0, 0] = 3
    return volume, data


@pytest.mark.parametrize("sidecar", ["case.txt", "case.label.txt", "case.ctbl", "case_labels.txt", "case.itksnap.txt"])
def test_a_table_next_to_the_nifti_names_its_labels(tmp_path, grid, sidecar):
    volume, data = grid
    path = _nifti(tmp_path / "case.nii.gz", data, volume.affine)
    _write(tmp_path / sidecar, ITKSNAP_FILE if sidecar.endswith("txt") else SLICER_FILE)
    labels, notes = open_labels(path, ImageInput(path, volume, "nifti"))
    expected = {1: "Liver", 3: "Label 3"} if sidecar.endswith("txt") else {1: "liver", 3: "left_kidney"}
    assert {lab.value: lab.name for lab in labels.table} == expected and notes == ()
    # an explicit table wins where it defines a value; only values present are named from the file
    labels, _ = open_labels(path, ImageInput(path, volume, "nifti"), LabelTable((Label(1, "hepar", (1, 2, 3)),)))
    assert {lab.value: lab.name for lab in labels.table} == {1: "hepar", 3: expected[3]}


def test_nnunet_labels_find_their_dataset_json_one_folder_up(tmp_path, grid):
    volume, data = grid
    (tmp_path / "labelsTr").mkdir()
    path = _nifti(tmp_path / "labelsTr" / "liver_001.nii.gz", data, volume.affine)
    _write(tmp_path / "dataset.json", json.dumps({"labels": {"background": 0, "liver": 1, "spleen": 2, "kidney": 3}}))
    labels = nifti.read_labels(path, volume)
    assert {lab.value: lab.name for lab in labels.table} == {1: "liver", 3: "kidney"}
    _write(tmp_path / "labelsTr" / "liver_001.txt", "this is a note, not a table\n")
    labels, notes = open_labels(path, ImageInput(path, volume, "nifti"))
    assert {lab.value: lab.name for lab in labels.table} == {1: "liver", 3: "kidney"}
    assert len(notes) == 1 and "liver_001.txt not used" in notes[0]
    _write(tmp_path / "dataset.json", json.dumps({"name": "another tool's file"}))
    labels, notes = open_labels(path, ImageInput(path, volume, "nifti"))
    assert labels.table.get(1).name == "Label 1" and len(notes) == 1  # the foreign dataset.json is no news


def test_a_0_255_nifti_reads_as_a_binary_mask_with_a_note(tmp_path, grid):
    volume, data = grid
    path = _nifti(tmp_path / "mask.nii.gz", np.where(data == 1, 255, 0).astype(np.uint8), volume.affine)
    labels, notes = open_labels(path, ImageInput(path, volume, "nifti"))
    assert np.array_equal(labels.labels, (data == 1).astype(np.uint8)) and labels.table.values == (1,)
    assert notes == ("mask.nii.gz: values {0, 255}: read as a binary mask (255 = label 1)",)
    sparse = np.where(data == 1, 1, 255).astype(np.uint8)
    sparse[0] = 0
    path = _nifti(tmp_path / "sparse.nii.gz", sparse, volume.affine)  # {0, 1, 255}: 255 stays "not annotated"
    labels, notes = open_labels(path, ImageInput(path, volume, "nifti"))
    assert np.array_equal(labels.labels, sparse) and notes == ()


def test_export_writes_both_tables_and_a_reimport_gets_the_names(tmp_path, dcmqi):
    volume, liver = dcmqi
    table = LabelTable((Label(1, "Liver parenchyma", (220, 120, 90)), Label(7, "unused", (1, 2, 3))))
    data = liver.labels.copy()
    data[:, 0:10, 0:10] = 4  # a value the table does not name
    paths = export(volume, LabelMap(data, volume.affine.copy(), table), str(tmp_path), ExportOptions(label_png=False))
    names = sorted(os.path.basename(p) for p in paths)
    stem = "CT_s2_0bbbf5_labels"
    assert names == [f"{stem}.ctbl", f"{stem}.itksnap.txt", f"{stem}.nii.gz", "CT_s2_0bbbf5_metrics.csv"]
    snap = label_tables.read_entries(str(tmp_path / f"{stem}.itksnap.txt"))
    assert [(e.value, e.name, e.color) for e in snap] == [(0, "Clear Label", (0, 0, 0)), (1, "Liver parenchyma", (220, 120, 90)),
                                                          (4, "Label 4", snap[2].color), (7, "unused", (1, 2, 3))]
    slicer = label_tables.read_entries(str(tmp_path / f"{stem}.ctbl"))
    assert [e.name for e in slicer] == ["Background", "Liver_parenchyma", "Label_4", "unused"]
    back = nifti.read_labels(str(tmp_path / f"{stem}.nii.gz"), volume)
    assert np.array_equal(back.labels, data)
    assert {lab.value: (lab.name, lab.color) for lab in back.table} == {1: ("Liver parenchyma", (220, 120, 90)),
                                                                        4: ("Label 4", snap[2].color)}


def test_predict_to_nifti_writes_the_tables_next_to_it(tmp_path, phantom):
    from engine_fixtures import tiny_checkpoint
    from unetgui import cli
    from unetgui.engine import checkpoint

    model = str(tmp_path / "tiny.unetgui")
    checkpoint.save(tiny_checkpoint(), model)
    image = Volume(phantom, np.diag([0.8, 0.8, 2.0, 1.0]), "CT")
    nifti.write_image(image, str(tmp_path / "ct.nii.gz"))
    out = tmp_path / "pred.nii.gz"
    assert cli.main(["predict", "--model", model, "--input", str(tmp_path / "ct.nii.gz"), "--output", str(out),
                     "--device", "cpu"]) == 0
    assert label_tables.read_table(str(tmp_path / "pred.itksnap.txt")).get(1).name == "liver"
    assert label_tables.read_table(str(tmp_path / "pred.ctbl")).get(1).name == "liver"
    assert nifti.read_labels(str(out)).table.get(1).name == "liver"
