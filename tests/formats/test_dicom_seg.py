"""DICOM-SEG: the shared dcmqi liver SEG reads back equal to its NRRD labelmap; our SEGs round-trip exactly."""

from __future__ import annotations

import os

import nrrd
import numpy as np
import pydicom
import pytest

from conftest import DATA
from unetgui.core.errors import FormatError
from unetgui.core.geometry import LPS_TO_RAS, index_transform
from unetgui.core.volume import Label, LabelMap, LabelTable
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series
from unetgui.formats.dicom_seg import read_dicom_seg, write_dicom_seg

DCMQI = DATA / "dcmqi-ct-3slice-liver-seg"


@pytest.fixture(scope="module")
def dcmqi_ct():
    (series,) = scan(str(DCMQI / "ct")).series
    return load_series(series)


def _nrrd_on_grid(path, volume) -> np.ndarray:
    """An NRRD labelmap mapped onto the volume through its own geometry (space directions/origin)."""
    data, header = nrrd.read(str(path))
    assert header["space"] == "left-posterior-superior"
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(header["space directions"], float).T
    affine[:3, 3] = header["space origin"]
    order, flips = index_transform(LPS_TO_RAS @ affine, data.shape, volume.affine, volume.shape[::-1])
    data = data.transpose(order)
    data = np.flip(data, [a for a in range(3) if flips[a]]) if any(flips) else data
    return data.transpose(2, 1, 0)


def test_dcmqi_liver_seg_equals_its_nrrd_labelmap(dcmqi_ct):
    labels, notes = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), dcmqi_ct)
    expected = _nrrd_on_grid(DCMQI / "labelmaps" / "liver_seg.nrrd", dcmqi_ct)
    assert np.array_equal(labels.labels, expected)
    assert [int(labels.labels[k].sum()) for k in range(3)] == [36233, 35645, 35220]  # README counts
    assert labels.table.get(1).name == "Liver"
    # its codes, the retired SNOMED RT ones (T-62000) as the SNOMED CT codes new objects must use
    assert labels.table.get(1).codes == (("category", "SCT", "85756007", "Tissue"), ("type", "SCT", "10200004", "Liver"))
    assert notes == ()


def test_overlapping_segments_are_resolved_with_a_warning(dcmqi_ct):
    labels, notes = read_dicom_seg(str(DCMQI / "seg" / "partial_overlaps_seg.dcm"), dcmqi_ct)
    assert len(labels.table) == 5
    assert notes and "overlap" in notes[0]
    assert set(np.unique(labels.labels)) == {0, 1, 2, 3, 4, 5}


def test_segment_codes_survive_a_round_trip_whatever_the_names(tmp_path, dcmqi_ct):
    """dcmqi names its segments by colour ("ORANGE" is an artery): written again, each keeps its codes
    instead of being coded from a name that says nothing of it."""
    labels, _ = read_dicom_seg(str(DCMQI / "seg" / "partial_overlaps_seg.dcm"), dcmqi_ct)
    assert labels.table.get(2).name == "ORANGE" and labels.table.get(2).code("type") == ("SCT", "51114001", "Artery")
    write_dicom_seg(labels, dcmqi_ct, str(tmp_path / "again.dcm"))
    back, _ = read_dicom_seg(str(tmp_path / "again.dcm"), dcmqi_ct)
    assert back.table == labels.table and np.array_equal(back.labels, labels.labels)


@pytest.mark.parametrize("name", ["liver.dcm", "liver_expb.dcm", "liver_j2k.dcm"])
def test_encoding_variants_of_the_liver_seg_read_the_same(dcmqi_ct, name):
    reference, _ = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), dcmqi_ct)
    variant, _ = read_dicom_seg(str(DATA / "pydicom-data" / "data" / name), dcmqi_ct)
    assert np.array_equal(variant.labels, reference.labels)


def test_round_trip_is_exact_with_non_contiguous_label_values(tmp_path, phantom):
    write_series(phantom, str(tmp_path / "ct"), SeriesSpec(slice_spacing=2.0))
    (series,) = scan(str(tmp_path / "ct")).series
    volume = load_series(series)
    table = LabelTable((Label(1, "liver", (200, 90, 60)), Label(4, "tumour", (30, 220, 40)), Label(9, "empty", (1, 2, 3))))
    lm = LabelMap.empty_like(volume, table)
    lm.labels[volume.voxels > 60] = 1
    lm.labels[5, 20:30, 20:30] = 4
    path = str(tmp_path / "seg.dcm")
    write_dicom_seg(lm, volume, path)
    back, notes = read_dicom_seg(path, volume)
    assert np.array_equal(back.labels, lm.labels)
    assert back.affine == pytest.approx(volume.affine)
    assert [(lab.value, lab.name) for lab in back.table] == [(1, "liver"), (4, "tumour"), (9, "empty")]
    assert all(np.abs(np.subtract(back.table.get(v).color, table.get(v).color)).max() <= 2 for v in (1, 4, 9))
    seg = pydicom.dcmread(path)
    assert seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.info.series_uid
    # scanning the folder finds the SEG and what it refers to, and does not treat it as an image
    result = scan(str(tmp_path))
    assert len(result.series) == 1 and result.segmentations[0].referenced_series_uid == volume.info.series_uid


def test_unannotated_voxels_are_exported_as_background(tmp_path, dcmqi_ct):
    lm = LabelMap.empty_like(dcmqi_ct, LabelTable.from_names("liver"))
    lm.labels[0, :10, :10] = 1
    lm.labels[1] = 255
    write_dicom_seg(lm, dcmqi_ct, str(tmp_path / "s.dcm"))
    back, _ = read_dicom_seg(str(tmp_path / "s.dcm"), dcmqi_ct)
    assert back.labels[1].max() == 0 and back.labels[0, :10, :10].min() == 1


def test_volume_without_instance_uids_cannot_be_referenced(tmp_path):
    (series,) = scan(str(DATA / "totalsegmentator-example-ct-dicom")).series
    volume = load_series(series)
    lm = LabelMap.empty_like(volume, LabelTable.from_names("x"))
    with pytest.raises(FormatError, match="SOP instance UIDs"):
        write_dicom_seg(lm, volume, str(tmp_path / "s.dcm"))


def test_seg_of_another_series_is_refused(tmp_path, phantom, dcmqi_ct):
    write_series(phantom, str(tmp_path / "ct"))
    (series,) = scan(str(tmp_path / "ct")).series
    with pytest.raises(FormatError, match="does not reference any image"):
        read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), load_series(series))
    with pytest.raises(FormatError, match="not a readable DICOM segmentation"):
        read_dicom_seg(str(DCMQI / "ct" / "01.dcm"), dcmqi_ct)


def test_highdicom_test_seg_on_its_16x16_ct_series():
    ct_folder = DATA / "pydicom-test-files" / "test_files" / "dicomdirtests" / "77654033" / "CT2"
    (series,) = scan(str(ct_folder)).series
    volume = load_series(series)
    labels, _ = read_dicom_seg(str(DATA / "highdicom-seg-test-files" / "seg_image_ct_binary.dcm"), volume)
    assert labels.shape == volume.shape
    assert labels.labels.any()


def test_a_failed_write_leaves_the_previous_seg_whole_and_no_temporary_file(tmp_path, phantom, monkeypatch):
    write_series(phantom, str(tmp_path / "ct"), SeriesSpec(slice_spacing=2.0))
    (series,) = scan(str(tmp_path / "ct")).series
    volume = load_series(series)
    lm = LabelMap.empty_like(volume, LabelTable((Label(1, "liver", (200, 90, 60)),)))
    lm.labels[volume.voxels > 60] = 1
    out = tmp_path / "out"
    out.mkdir()
    write_dicom_seg(lm, volume, str(out / "seg.dcm"))
    before = (out / "seg.dcm").read_bytes()

    def disk_full(self, filename, *args, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"DICM partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(pydicom.Dataset, "save_as", disk_full)
    with pytest.raises(FormatError, match="No space left"):
        write_dicom_seg(lm, volume, str(out / "seg.dcm"))
    assert (out / "seg.dcm").read_bytes() == before and os.listdir(out) == ["seg.dcm"]


def test_a_segment_colour_of_the_wrong_length_falls_back_to_the_default(tmp_path, phantom):
    """Issue 12, item 4: a crafted RecommendedDisplayCIELabValue (2 values, or text) must not stop the read."""
    from unetgui.core.volume import default_color

    write_series(phantom, str(tmp_path / "ct"), SeriesSpec(slice_spacing=2.0))
    (series,) = scan(str(tmp_path / "ct")).series
    volume = load_series(series)
    lm = LabelMap.empty_like(volume, LabelTable((Label(1, "liver", (200, 90, 60)), Label(2, "cyst", (9, 9, 200)))))
    lm.labels[volume.voxels > 60] = 1
    lm.labels[5, 20:30, 20:30] = 2
    path = str(tmp_path / "seg.dcm")
    write_dicom_seg(lm, volume, path)
    ds = pydicom.dcmread(path)
    ds.SegmentSequence[0].RecommendedDisplayCIELabValue = [100, 200]
    ds.SegmentSequence[1].RecommendedDisplayCIELabValue = [1, 2, 3, 4]
    ds.save_as(path)
    back, _ = read_dicom_seg(path, volume)
    assert np.array_equal(back.labels, lm.labels)
    assert [lab.color for lab in back.table] == [default_color(1), default_color(2)]


@pytest.fixture
def phantom_series(tmp_path, phantom):
    write_series(phantom, str(tmp_path / "ct"), SeriesSpec(slice_spacing=2.0))
    (series,) = scan(str(tmp_path / "ct")).series
    return load_series(series)


def _coded(path) -> list[tuple]:
    """(category, type, type modifier, anatomic region, algorithm type) of each segment, as SNOMED code values."""
    out = []
    for s in pydicom.dcmread(path).SegmentSequence:
        kind = s.SegmentedPropertyTypeCodeSequence[0]
        modifier = kind.get("SegmentedPropertyTypeModifierCodeSequence")
        region = s.get("AnatomicRegionSequence")
        out.append((s.SegmentedPropertyCategoryCodeSequence[0].CodeValue, kind.CodeValue,
                    modifier[0].CodeValue if modifier else None, region[0].CodeValue if region else None,
                    s.SegmentAlgorithmType))
    return out


def test_segments_are_coded_from_their_label_names(phantom_series, tmp_path):
    """Issue 16: SNOMED CT codes from pydicom's dictionary; an unknown name stays Tissue/Tissue."""
    table = LabelTable((Label(1, "Liver", (200, 90, 60)), Label(2, "liver tumour", (30, 220, 40)),
                        Label(3, "Left kidney", (1, 2, 3)), Label(4, "Whatsit 7", (9, 9, 9))))
    lm = LabelMap.empty_like(phantom_series, table)
    lm.labels[phantom_series.voxels > 60] = 1
    lm.labels[5, 20:30, 20:30] = 2
    path = str(tmp_path / "seg.dcm")
    write_dicom_seg(lm, phantom_series, path)
    anatomy, abnormal, tissue = "91723000", "49755003", "85756007"
    liver, neoplasm, kidney, left = "10200004", "108369006", "64033007", "7771000"
    assert [c[:4] for c in _coded(path)] == [(anatomy, liver, None, None), (abnormal, neoplasm, None, liver),
                                             (anatomy, kidney, left, None), (tissue, tissue, None, None)]
    back, _ = read_dicom_seg(path, phantom_series)
    assert np.array_equal(back.labels, lm.labels) and [lab.name for lab in back.table] == [lab.name for lab in table]


def test_names_match_case_spelling_and_plural_tolerantly():
    from pydicom.sr.codedict import codes

    from unetgui.formats.dicom_seg import TISSUE, segment_coding

    assert segment_coding("liver").type == segment_coding("LIVER_1").type == codes.SCT.Liver
    assert segment_coding("Grey matter").type == codes.SCT.GrayMatter
    assert segment_coding("kidneys").type == codes.SCT.Kidney and segment_coding("kidneys").modifier is None
    assert segment_coding("spinal cord").category == codes.SCT.AnatomicalStructure
    tumour = segment_coding("Tumor of the liver")
    assert (tumour.category, tumour.type, tumour.region) == (codes.SCT.MorphologicallyAbnormalStructure,
                                                             codes.SCT.Neoplasm, codes.SCT.Liver)
    assert segment_coding("bone").category == codes.SCT.Tissue
    assert segment_coding("membrane") == segment_coding("bone marrow") == segment_coding("Label 3") == TISSUE


def test_algorithm_type_says_who_made_each_segment(phantom_series, tmp_path):
    """AUTOMATIC: model output untouched; SEMIAUTOMATIC: model output corrected on a slice holding the
    segment; MANUAL: drawn by hand with no model; unknown provenance stays SEMIAUTOMATIC."""
    table = LabelTable((Label(1, "liver", (200, 90, 60)), Label(2, "spleen", (30, 220, 40))))
    lm = LabelMap.empty_like(phantom_series, table)
    lm.labels[2:5, 10:20, 10:20] = 1
    lm.labels[8, 40:50, 40:50] = 2
    edited = np.zeros(phantom_series.shape[0], bool)
    edited[8] = True  # the spleen's slice was corrected, the liver's were not

    def kinds(**kwargs) -> list[str]:
        path = str(tmp_path / "seg.dcm")
        write_dicom_seg(lm, phantom_series, path, **kwargs)
        assert np.array_equal(read_dicom_seg(path, phantom_series)[0].labels, lm.labels)
        return [c[4] for c in _coded(path)]

    assert kinds() == ["SEMIAUTOMATIC", "SEMIAUTOMATIC"]
    assert kinds(model_made=True) == ["AUTOMATIC", "AUTOMATIC"]
    assert kinds(model_made=True, edited=edited) == ["AUTOMATIC", "SEMIAUTOMATIC"]
    assert kinds(model_made=False, edited=edited) == ["MANUAL", "MANUAL"]
    by_model = np.zeros(phantom_series.shape[0], bool)
    by_model[:6] = True  # a model wrote slices 0-5; slice 8 was drawn from scratch
    assert kinds(model_made=by_model, edited=edited) == ["AUTOMATIC", "MANUAL"]
    assert "SegmentAlgorithmName" not in pydicom.dcmread(str(tmp_path / "seg.dcm")).SegmentSequence[1]
