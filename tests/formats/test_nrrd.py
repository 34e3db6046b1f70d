"""NRRD and 3D Slicer .seg.nrrd: dcmqi's NRRD label maps land on the DICOM like its DICOM-SEG, our .seg.nrrd
carries the DICOM geometry and the label names, cropped and layered Slicer files are embedded and resolved."""

from __future__ import annotations

import os

import nrrd as pynrrd
import numpy as np
import pytest

from conftest import DATA
from unetgui.core.errors import FormatError, GeometryError
from unetgui.core.geometry import LPS_TO_RAS
from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable, Volume
from unetgui.formats import nrrd
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series
from unetgui.formats.dicom_seg import read_dicom_seg
from unetgui.formats.export import ExportOptions, export
from unetgui.formats.inputs import ImageInput, open_image, open_labels

DCMQI = DATA / "dcmqi-ct-3slice-liver-seg"
MAPS = DCMQI / "labelmaps"


@pytest.fixture(scope="module")
def ct():
    (series,) = scan(str(DCMQI / "ct")).series
    return ImageInput(str(DCMQI / "ct"), load_series(series), "dicom")


def _lps(affine: np.ndarray) -> np.ndarray:
    return LPS_TO_RAS @ affine


def test_dcmqi_liver_nrrd_equals_its_dicom_seg_on_the_ct(ct):
    labels, notes = open_labels(str(MAPS / "liver_seg.nrrd"), ct)
    seg, _ = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), ct.volume)
    assert np.array_equal(labels.labels, seg.labels) and notes == ()
    assert [int(labels.labels[k].sum()) for k in range(3)] == [36233, 35645, 35220]  # the README's counts
    assert np.allclose(labels.affine, ct.volume.affine)
    own, _ = nrrd.read_labels(str(MAPS / "liver_seg.nrrd"))  # its own grid is the DICOM's
    assert np.allclose(own.affine, ct.volume.affine, atol=1e-4)


def test_dcmqi_partial_overlap_nrrds_equal_the_overlapping_dicom_seg(ct):
    seg, _ = read_dicom_seg(str(DCMQI / "seg" / "partial_overlaps_seg.dcm"), ct.volume)
    maps = [open_labels(str(MAPS / f"partial_overlaps-{k}.nrrd"), ct)[0].labels for k in (1, 2, 3)]
    resolved = np.zeros(ct.volume.shape, np.uint8)
    for value in range(1, 6):  # the SEG's rule: the later segment wins
        for m in maps:
            resolved[m == value] = value
    assert np.array_equal(resolved, seg.labels)
    for name, values in (("spine_seg", {0, 2}), ("heart_seg", {0, 3}), ("liver_spine_seg", {0, 1, 2})):
        labels, _ = open_labels(str(MAPS / f"{name}.nrrd"), ct)
        assert set(np.unique(labels.labels)) == values


def test_nrrd_images_and_detached_headers(tmp_path, ct):
    volume = nrrd.read_image(str(MAPS / "liver_seg.nrrd"))
    assert volume.shape == ct.volume.shape and volume.voxels.dtype == np.int16
    data, header = pynrrd.read(str(MAPS / "liver_seg.nrrd"))
    hu = (data.astype(np.int16) * 1100 - 1000)  # air and a 100 HU liver
    pynrrd.write(str(tmp_path / "ct.nhdr"), hu, {**header, "encoding": "raw"}, detached_header=True)
    assert sorted(os.listdir(tmp_path)) == ["ct.nhdr", "ct.raw"]
    image = open_image(str(tmp_path / "ct.nhdr"))
    assert image.kind == "nrrd" and image.volume.modality == "CT"
    assert np.array_equal(image.volume.voxels, hu.transpose(2, 1, 0))
    assert np.allclose(image.volume.affine, ct.volume.affine, atol=1e-4)
    ras = {**header, "space": "right-anterior-superior", "space origin": -header["space origin"] * [1, 1, -1],
           "space directions": header["space directions"] * [-1, -1, 1]}
    pynrrd.write(str(tmp_path / "ras.nrrd"), data, ras)
    assert np.allclose(nrrd.read_image(str(tmp_path / "ras.nrrd")).affine, volume.affine)


def _written(tmp_path, ct) -> tuple[LabelMap, str]:
    table = LabelTable((Label(1, "Liver", (221, 130, 101)), Label(3, "portal vein", (0, 151, 206)),
                        Label(9, "not drawn yet", (1, 2, 3))))
    data, _ = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), ct.volume)
    labels = data.labels.copy()
    labels[1, 200:220, 240:260] = 3
    labels[:, :20, :20] = UNANNOTATED
    path = str(tmp_path / "liver.seg.nrrd")
    nrrd.write_segmentation(LabelMap(labels, ct.volume.affine.copy(), table), path)
    return LabelMap(labels, ct.volume.affine.copy(), table), path


def test_written_seg_nrrd_has_the_dicom_geometry_and_slicer_keys(tmp_path, ct):
    labels, path = _written(tmp_path, ct)
    data, header = pynrrd.read(path)
    lps = _lps(ct.volume.affine)
    assert header["space"] == "left-posterior-superior" and data.dtype == np.uint8 and data.shape == (512, 512, 3)
    assert np.allclose(header["space origin"], lps[:3, 3], atol=1e-6)
    assert np.allclose(header["space directions"], lps[:3, :3].T, atol=1e-9)
    expected = np.where(labels.labels == UNANNOTATED, 0, labels.labels)  # Slicer has no "not annotated"
    assert np.array_equal(data.transpose(2, 1, 0), expected)
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert header["Segmentation_ContainedRepresentationNames"] == "Binary labelmap|"
    segments = [(header[f"Segment{i}_ID"], header[f"Segment{i}_Name"], header[f"Segment{i}_LabelValue"],
                 header[f"Segment{i}_Layer"], header[f"Segment{i}_Extent"]) for i in range(3)]
    assert segments[0][:4] == ("Segment_1", "Liver", "1", "0")
    assert segments[1] == ("Segment_3", "portal vein", "3", "0", "240 259 200 219 1 1")
    assert segments[2][4] == "0 -1 0 -1 0 -1"  # Slicer's empty extent
    assert header["Segment0_Color"] == "0.866667 0.509804 0.396078" and "Segment0_Tags" in header
    assert "Segment3_ID" not in header


def test_written_seg_nrrd_reads_back_with_names_and_colours(tmp_path, ct):
    labels, path = _written(tmp_path, ct)
    back, notes = open_labels(path, ct)
    assert np.array_equal(back.labels, np.where(labels.labels == UNANNOTATED, 0, labels.labels)) and notes == ()
    assert [(lab.value, lab.name, lab.color) for lab in back.table] == [(lab.value, lab.name, lab.color) for lab in labels.table]
    # each segment's terminology entry, coded from its name, is read back as the label's codes
    assert back.table.get(1).code("type") == ("SCT", "10200004", "Liver")
    assert back.table.get(3).code("category") == ("SCT", "91723000", "Anatomical Structure")
    assert back.table.get(9).code("type") == ("SCT", "85756007", "Tissue")  # nothing fits "not drawn yet"
    # an explicit table (e.g. the model's) wins where it defines a value
    back, _ = open_labels(path, ct, LabelTable((Label(3, "vena portae", (5, 5, 5)),)))
    assert [(lab.value, lab.name) for lab in back.table] == [(1, "Liver"), (3, "vena portae"), (9, "not drawn yet")]


def _slicer_header(ct, offset_xyz, segments, layers=1) -> dict:
    """A header as Slicer writes a cropped segmentation: the origin moved to the box's first voxel."""
    lps = _lps(ct.volume.affine)
    header = {"type": "unsigned char", "space": "left-posterior-superior", "encoding": "gzip",
              "space directions": lps[:3, :3].T, "space origin": lps[:3, :3] @ np.asarray(offset_xyz, float) + lps[:3, 3],
              "kinds": ["domain"] * 3, "Segmentation_MasterRepresentation": "Binary labelmap",
              "Segmentation_ReferenceImageExtentOffset": " ".join(map(str, offset_xyz))}
    if layers > 1:
        header["space directions"] = np.vstack([[np.nan] * 3, header["space directions"]])
        header["kinds"] = ["list"] + header["kinds"]
    for i, (name, value, layer, color) in enumerate(segments):
        header.update({f"Segment{i}_ID": f"Segment_{i + 1}", f"Segment{i}_Name": name, f"Segment{i}_LabelValue": str(value),
                       f"Segment{i}_Layer": str(layer), f"Segment{i}_Color": color, f"Segment{i}_Tags": "|"})
    return header


def test_a_cropped_slicer_segmentation_is_embedded_in_the_reference_grid(tmp_path, ct):
    seg, _ = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), ct.volume)
    xyz = seg.labels.transpose(2, 1, 0)
    (x0, x1), (y0, y1) = [(int(np.flatnonzero(xyz.any(axis=a))[0]), int(np.flatnonzero(xyz.any(axis=a))[-1]))
                          for a in ((1, 2), (0, 2))]
    box = np.ascontiguousarray(xyz[x0:x1 + 1, y0:y1 + 1, 1:3] * 7)  # value 7, slices 1..2 only
    header = _slicer_header(ct, (x0, y0, 1), [("Liver", 7, 0, "0.5 0.25 1")])
    pynrrd.write(str(tmp_path / "crop.seg.nrrd"), box, header)
    labels, notes = open_labels(str(tmp_path / "crop.seg.nrrd"), ct)
    expected = seg.labels * 7
    expected[0] = 0
    assert np.array_equal(labels.labels, expected) and notes == ()
    assert labels.table == LabelTable((Label(7, "Liver", (128, 64, 255)),))
    # the same box half a voxel off the grid is no sub-box: refused, never resampled
    header["space origin"] = header["space origin"] + _lps(ct.volume.affine)[:3, 0] / 2
    pynrrd.write(str(tmp_path / "off.seg.nrrd"), box, header)
    with pytest.raises(GeometryError, match="does not match the image grid"):
        open_labels(str(tmp_path / "off.seg.nrrd"), ct)


def test_layered_slicer_segmentation_resolves_overlaps_like_the_dicom_seg(tmp_path, ct):
    """dcmqi's partial-overlap example as Slicer 5 would store it: 3 layers, 5 segments, cropped."""
    layers = np.stack([pynrrd.read(str(MAPS / f"partial_overlaps-{k}.nrrd"))[0].astype(np.uint8) for k in (1, 2, 3)])
    where = np.flatnonzero(layers.any(axis=(0, 2, 3)))
    x0, x1 = int(where[0]), int(where[-1])
    cropped = np.ascontiguousarray(layers[:, x0:x1 + 1])
    segments = [("GREEN", 1, 0, "0.5 0.68 0.5"), ("ORANGE", 2, 1, "0.85 0.4 0.3"), ("PURPLE", 3, 2, "0.7 0.6 0.86"),
                ("LIGHT BLUE", 4, 0, "0.55 0.88 0.9"), ("DARK BLUE", 5, 0, "0 0.6 0.8")]
    pynrrd.write(str(tmp_path / "overlap.seg.nrrd"), cropped, _slicer_header(ct, (x0, 0, 0), segments, 3))
    labels, notes = open_labels(str(tmp_path / "overlap.seg.nrrd"), ct)
    seg, seg_notes = read_dicom_seg(str(DCMQI / "seg" / "partial_overlaps_seg.dcm"), ct.volume)
    assert np.array_equal(labels.labels, seg.labels)
    assert [lab.name for lab in labels.table] == ["GREEN", "ORANGE", "PURPLE", "LIGHT BLUE", "DARK BLUE"]
    assert len(notes) == 1 and "overlap in 3134 voxel(s)" in notes[0] and "3134 voxel(s)" in seg_notes[0]


def test_a_nrrd_on_another_grid_is_refused(tmp_path, ct):
    data, header = pynrrd.read(str(MAPS / "liver_seg.nrrd"))
    finer = {**header, "space directions": header["space directions"] * [[0.5], [0.5], [1]]}
    pynrrd.write(str(tmp_path / "finer.nrrd"), data, finer)
    with pytest.raises(GeometryError, match="finer.nrrd: the label grid does not match"):
        open_labels(str(tmp_path / "finer.nrrd"), ct)
    pynrrd.write(str(tmp_path / "part.nrrd"), np.ascontiguousarray(data[100:200]), header)  # a sub-box, no segmentation
    with pytest.raises(GeometryError):
        open_labels(str(tmp_path / "part.nrrd"), ct)
    flipped = {**header, "space directions": header["space directions"] * [[-1], [1], [1]],
               "space origin": header["space origin"] + header["space directions"][0] * 511}
    pynrrd.write(str(tmp_path / "flipped.nrrd"), np.ascontiguousarray(data[::-1]), flipped)  # same voxels, x reversed
    labels, _ = open_labels(str(tmp_path / "flipped.nrrd"), ct)
    assert np.array_equal(labels.labels, open_labels(str(MAPS / "liver_seg.nrrd"), ct)[0].labels)


def test_a_plain_nrrd_label_map_takes_names_from_a_table_next_to_it(tmp_path, ct):
    data, header = pynrrd.read(str(MAPS / "liver_spine_seg.nrrd"))
    pynrrd.write(str(tmp_path / "case.nrrd"), data, header)
    (tmp_path / "case.ctbl").write_text("0 Background 0 0 0 0\n1 liver 221 130 101 255\n2 spine 241 214 145 255\n")
    labels, _ = open_labels(str(tmp_path / "case.nrrd"), ct)
    assert [(lab.value, lab.name) for lab in labels.table] == [(1, "liver"), (2, "spine")]


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"NIFTI" + b[5:], "not a NRRD file"),
    (lambda b: b[: len(b) // 2], "damaged|truncated"),
    (lambda b: b.replace(b"sizes: 512 512 3", b"sizes: 512 512 30000"), "slices are more than|more than its data"),
    (lambda b: b.replace(b"sizes: 512 512 3", b"sizes: 512 512 300"), "more than its data"),
    (lambda b: b.replace(b"left-posterior-superior", b"scanner-xyz"), "space 'scanner-xyz' is not supported"),
    (lambda b: b.replace(b"type: short", b"type: block"), "type 'block' is not supported"),
    (lambda b: b.replace(b"dimension: 3", b"dimension: 2"), "not a readable NRRD header|dimension"),
])
def test_damaged_nrrd_files_are_one_line_format_errors(tmp_path, ct, damage, message):
    path = tmp_path / "bad.nrrd"
    path.write_bytes(damage((MAPS / "liver_seg.nrrd").read_bytes()))
    with pytest.raises(FormatError, match=message) as info:
        open_labels(str(path), ct)
    assert "\n" not in str(info.value)


def test_a_gzip_bomb_is_never_unpacked_beyond_what_the_header_claims(tmp_path):
    import gzip

    body = gzip.compress(bytes(64 << 20))  # 64 MiB of zeros in ~64 kB
    head = b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\nencoding: gzip\n\n"
    (tmp_path / "bomb.nrrd").write_bytes(head + body)
    volume = nrrd.read_image(str(tmp_path / "bomb.nrrd"))
    assert volume.shape == (4, 4, 4) and "no space directions" in volume.warnings[0]


def test_export_and_predict_write_seg_nrrd(tmp_path, ct, phantom):
    from engine_fixtures import tiny_checkpoint
    from unetgui import cli
    from unetgui.engine import checkpoint

    labels, _ = _written(tmp_path, ct)
    paths = export(ct.volume, labels, str(tmp_path / "out"), ExportOptions(label_png=False, nifti=False,
                                                                         metrics_csv=False, seg_nrrd=True))
    assert [os.path.basename(p) for p in paths] == ["CT_s2_0bbbf5_labels.seg.nrrd"]
    back, _ = open_labels(paths[0], ct)
    assert np.array_equal(back.labels, np.where(labels.labels == UNANNOTATED, 0, labels.labels))

    write_series(phantom, str(tmp_path / "dicom"), SeriesSpec(slice_spacing=2.0))
    model = str(tmp_path / "tiny.unetgui")
    checkpoint.save(tiny_checkpoint(), model)
    for out in ("pred.seg.nrrd", "pred.nii.gz"):
        assert cli.main(["predict", "--model", model, "--input", str(tmp_path / "dicom"), "--output",
                         str(tmp_path / out), "--device", "cpu"]) == 0
    image = open_image(str(tmp_path / "dicom"))
    seg, notes = open_labels(str(tmp_path / "pred.seg.nrrd"), image)
    nii, _ = open_labels(str(tmp_path / "pred.nii.gz"), image)
    assert np.array_equal(seg.labels, nii.labels) and seg.labels.any() and notes == ()
    assert seg.table.get(1).name == "liver"
    header = pynrrd.read_header(str(tmp_path / "pred.seg.nrrd"))
    assert np.allclose(header["space origin"], _lps(image.volume.affine)[:3, 3], atol=1e-6)
    assert cli.main(["predict", "--model", model, "--input", str(tmp_path / "dicom"), "--output",
                     str(tmp_path / "pred.nrrd")]) == 1  # a plain .nrrd is not a prediction output


def test_volume_axes_stay_z_y_x(tmp_path):
    """A non-cubic grid keeps its axes: NRRD x (fastest) is the column index."""
    voxels = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) - 1000
    affine = np.diag([0.5, 0.7, 2.5, 1.0])
    labels = LabelMap((voxels % 3).astype(np.uint8), affine)
    nrrd.write_segmentation(labels, str(tmp_path / "small.seg.nrrd"))
    data, header = pynrrd.read(str(tmp_path / "small.seg.nrrd"))
    assert data.shape == (4, 3, 2) and np.array_equal(data.transpose(2, 1, 0), labels.labels)
    back, _ = nrrd.read_labels(str(tmp_path / "small.seg.nrrd"), Volume(voxels, affine))
    assert np.array_equal(back.labels, labels.labels) and np.allclose(back.affine, affine)


@pytest.mark.parametrize("encoding, dtype, space, signs", [
    ("ascii", "<i2", "LPS", (-1, -1, 1)), ("raw", ">u2", "RAS", (1, 1, 1)), ("bzip2", "<f4", "left-anterior-superior", (-1, 1, 1)),
])
def test_encodings_byte_orders_and_spaces(tmp_path, encoding, dtype, space, signs):
    data = (np.arange(24).reshape(4, 3, 2) * 3).astype(dtype)  # (x, y, z) as NRRD stores it
    directions = np.diag([0.5, 0.75, 2.0])
    pynrrd.write(str(tmp_path / "v.nrrd"), data, {"encoding": encoding, "space": space, "space directions": directions,
                                                 "space origin": np.asarray([10.0, 20.0, 30.0])})
    volume = nrrd.read_image(str(tmp_path / "v.nrrd"))
    assert np.array_equal(volume.voxels, data.transpose(2, 1, 0)) and volume.voxels.dtype.isnative
    assert np.allclose(volume.affine[:3, :3], np.diag(signs) @ directions)
    assert np.allclose(volume.affine[:3, 3], np.asarray(signs) * [10.0, 20.0, 30.0])


def test_cli_info_describes_nrrd_and_export_writes_seg_nrrd(tmp_path, capsys):
    from unetgui import cli

    assert cli.main(["info", str(MAPS / "liver_seg.nrrd")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("NRRD ") and "512 x 512 x 3 voxels" in out and "space left-posterior-superior" in out
    assert cli.main(["export", "--input", str(DCMQI / "ct"), "--labels", str(MAPS / "liver_seg.nrrd"),
                     "--output", str(tmp_path / "out"), "--seg-nrrd"]) == 0
    (written,) = capsys.readouterr().out.split()
    assert written.endswith("_labels.seg.nrrd")
    assert cli.main(["info", written]) == 0  # a segmentation: its segments and what they are
    assert "segment 1: Label 1, value 1 in layer 0 (Tissue, category Tissue)" in capsys.readouterr().out  # unnamed
    assert cli.main(["info", str(DCMQI / "seg")]) == 1  # no image series; dcmqi's DICOM-SEGs, by their codes
    out = capsys.readouterr().out
    assert "segment 1: Liver (Liver, category Tissue)" in out and "segment 2: ORANGE (Artery, category Tissue)" in out
    image = open_image(str(DCMQI / "ct"))
    back, notes = open_labels(written, image)
    seg, _ = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), image.volume)
    assert np.array_equal(back.labels, seg.labels) and notes == ()
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--seg-nrrd" in text and "NIfTI or NRRD file" in text and "(.seg.nrrd)" in text
    for command in ("train", "predict", "suggest", "info"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "NRRD" in capsys.readouterr().out


def test_slicer_terminology_entries_are_read_and_survive_an_export(tmp_path, ct):
    """Segments as 3D Slicer 5 tags them (its General Anatomy list: a mass in the left kidney, under a name
    that says nothing of it and would otherwise be coded as tissue; older lists' SNOMED RT codes): the codes
    are read with the segment, written again into a DICOM-SEG and a Slicer segmentation, and dropped when the
    user renames it."""
    from unetgui.formats.dicom_seg import write_dicom_seg

    seg, _ = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), ct.volume)
    header = _slicer_header(ct, (0, 0, 0), [("Segment_1", 1, 0, "0.5 0.25 1"), ("Tissue", 2, 0, "0.2 0.4 0.6")])
    header["Segment0_Tags"] = ("Segmentation.Status:inprogress|TerminologyEntry:Segmentation category and type - 3D "
                               "Slicer General Anatomy list~SCT^49755003^Morphologically Altered Structure~SCT^4147007^"
                               "Mass~^^~Anatomic codes - DICOM master list~SCT^64033007^Kidney~SCT^7771000^Left|")
    header["Segment1_Tags"] = "Segmentation.Status:completed|TerminologyEntry:broken|"  # no codes: coded by name
    header["Segment2_Tags"] = ("Segmentation.Status:inprogress|TerminologyEntry:Segmentation category and type - 3D "
                               "Slicer General Anatomy list~SRT^T-D0050^Tissue~SRT^T-62000^Liver~^^~Anatomic codes - "
                               "DICOM master list~^^~^^|")  # older Slicer lists: retired SNOMED RT codes
    header.update({"Segment2_ID": "Segment_3", "Segment2_Name": "Segment_3", "Segment2_LabelValue": "3",
                   "Segment2_Layer": "0", "Segment2_Color": "0.1 0.2 0.3"})
    data = seg.labels.transpose(2, 1, 0).copy()
    data[:5, :5, :] = 2
    data[-5:, -5:, :] = 3
    pynrrd.write(str(tmp_path / "mass.seg.nrrd"), data, header)
    labels, _ = open_labels(str(tmp_path / "mass.seg.nrrd"), ct)
    mass = labels.table.get(1)
    assert mass.codes == (("category", "SCT", "49755003", "Morphologically Altered Structure"),
                          ("type", "SCT", "4147007", "Mass"), ("region", "SCT", "64033007", "Kidney"),
                          ("region_modifier", "SCT", "7771000", "Left"))
    assert labels.table.get(2).codes == ()
    assert labels.table.get(3).code("type") == ("SCT", "10200004", "Liver")  # T-62000 as its SNOMED CT code
    nrrd.write_segmentation(labels, str(tmp_path / "again.seg.nrrd"))
    write_dicom_seg(labels, ct.volume, str(tmp_path / "seg.dcm"))
    for path in (str(tmp_path / "again.seg.nrrd"), str(tmp_path / "seg.dcm")):
        back, _ = open_labels(path, ct)
        assert back.table.get(1).codes == mass.codes and back.table.get(1).name == "Segment_1"
        assert back.table.get(3).codes == labels.table.get(3).codes
    import pydicom

    description = pydicom.dcmread(str(tmp_path / "seg.dcm")).SegmentSequence[0]
    assert description.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Mass"
    assert description.AnatomicRegionSequence[0].CodeValue == "64033007"
    assert description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence[0].CodeMeaning == "Left"
    renamed = mass.renamed("hepatic cyst")
    assert renamed.codes == () and mass.renamed("Segment_1").codes == mass.codes
