"""Export layer: NIfTI/DICOM-SEG/PNG/overlay/CSV outputs on real DICOM, names free of patient data,
all-or-nothing writes under cancel, and the ``unetgui export`` command."""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
from dataclasses import replace

import cv2
import nibabel as nib
import numpy as np
import pydicom
import pytest

from conftest import DATA
from unetgui import cli
from unetgui.cli import export_commands
from unetgui.core.errors import Cancelled, FormatError
from unetgui.core.geometry import LPS_TO_RAS
from unetgui.core.progress import CancelToken
from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable, SeriesInfo, Volume
from unetgui.formats import nifti
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series
from unetgui.formats.dicom_seg import read_dicom_seg
from unetgui.formats.export import ExportOptions, dicom_seg_problem, export, export_basename

DCMQI = DATA / "dcmqi-ct-3slice-liver-seg"
TOTALSEG = DATA / "totalsegmentator-example-ct-dicom" / "dicom"
NOTHING = ExportOptions(label_png=False, nifti=False, metrics_csv=False)


def _load(folder) -> Volume:
    (series,) = scan(str(folder)).series
    return load_series(series)


@pytest.fixture(scope="module")
def dcmqi():
    """The 3-slice real CT and its liver DICOM-SEG (labels 0/1)."""
    volume = _load(DCMQI / "ct")
    labels, _ = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), volume)
    return volume, labels


def _mixed_labels(volume: Volume, liver: LabelMap) -> LabelMap:
    """Liver (1), a box of value 3 and a not-annotated (255) box; slice k has k + 1 extra marker voxels."""
    table = liver.table.with_label(Label(3, "spine", (20, 200, 30)))
    data = liver.labels.copy()
    data[:, 400:440, 240:280] = 3
    data[:, 0:30, 0:30] = UNANNOTATED
    for k in range(volume.shape[0]):
        data[k, 500, 500:501 + k] = 3  # tells the slices apart
    return LabelMap(data, volume.affine.copy(), table)


def _files(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def test_nifti_is_on_the_dicom_world_geometry(tmp_path, dcmqi):
    volume, liver = dcmqi
    labels = _mixed_labels(volume, liver)
    paths = export(volume, labels, str(tmp_path), ExportOptions(label_png=False, metrics_csv=False, image_nifti=True))
    assert [os.path.basename(p) for p in paths] == ["CT_s2_0bbbf5_labels.nii.gz", "CT_s2_0bbbf5_labels.itksnap.txt",
                                                    "CT_s2_0bbbf5_labels.ctbl", "CT_s2_0bbbf5_image.nii.gz"]
    img = nib.load(paths[0])
    assert img.header["sform_code"] == 1 and img.header.get_intent()[0] == "label"
    assert np.allclose(img.affine, volume.affine, atol=1e-5)
    # voxel (i, j, k) lands where DICOM puts pixel (column i, row j) of slice k, in RAS
    for k, source in enumerate(volume.sources):
        ds = pydicom.dcmread(source.path, stop_before_pixels=True)
        row_dir, col_dir = np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float)
        dy, dx = (float(v) for v in ds.PixelSpacing)
        for i, j in ((0, 0), (7, 311), (511, 20)):
            lps = np.asarray(ds.ImagePositionPatient, float) + i * dx * row_dir + j * dy * col_dir
            assert img.affine @ [i, j, k, 1] == pytest.approx(LPS_TO_RAS @ [*lps, 1], abs=1e-3)
    expected = np.where(labels.labels == UNANNOTATED, 0, labels.labels)
    assert np.array_equal(np.asanyarray(img.dataobj).transpose(2, 1, 0), expected)
    assert np.array_equal(nifti.read_labels(paths[0], volume).labels, expected)
    image = nib.load(paths[3])
    assert np.allclose(image.affine, volume.affine, atol=1e-5)
    assert np.array_equal(np.asanyarray(image.dataobj).transpose(2, 1, 0), volume.voxels)


def test_nifti_geometry_of_the_20_slice_ct(tmp_path):
    volume = _load(TOTALSEG)
    labels = LabelMap.empty_like(volume, LabelTable.from_names("body"))
    labels.labels[volume.voxels > -300] = 1
    path, *tables = export(volume, labels, str(tmp_path), ExportOptions(label_png=False, metrics_csv=False))
    assert [os.path.splitext(t)[1] for t in tables] == [".txt", ".ctbl"]  # the names for ITK-SNAP and Slicer
    img = nib.load(path)
    first, last = (pydicom.dcmread(volume.sources[k].path, stop_before_pixels=True) for k in (0, 19))
    assert img.affine @ [0, 0, 0, 1] == pytest.approx(LPS_TO_RAS @ [*first.ImagePositionPatient, 1], abs=1e-3)
    assert img.affine @ [0, 0, 19, 1] == pytest.approx(LPS_TO_RAS @ [*last.ImagePositionPatient, 1], abs=1e-3)
    assert np.array_equal(nifti.read_labels(path, volume).labels, labels.labels)
    # this series is anonymised to blank SOP instance UIDs: a SEG could not reference it
    assert "blank UIDs" in dicom_seg_problem(volume, labels)
    with pytest.raises(FormatError, match="blank UIDs"):
        export(volume, labels, str(tmp_path / "seg"), ExportOptions(dicom_seg=True))
    assert not (tmp_path / "seg").exists()


def test_dicom_seg_reads_back_equal(tmp_path, dcmqi):
    volume, liver = dcmqi
    labels = _mixed_labels(volume, liver)
    (path,) = export(volume, labels, str(tmp_path), ExportOptions(label_png=False, nifti=False, metrics_csv=False,
                                                                  dicom_seg=True))
    assert os.path.basename(path) == "CT_s2_0bbbf5_seg.dcm"
    back, notes = read_dicom_seg(path, volume)
    assert np.array_equal(back.labels, np.where(labels.labels == UNANNOTATED, 0, labels.labels))
    assert [(lab.value, lab.name) for lab in back.table] == [(1, "Liver"), (3, "spine")]
    assert notes == ()
    assert pydicom.dcmread(path).ReferencedSeriesSequence[0].SeriesInstanceUID == volume.info.series_uid


def test_label_pngs_hold_the_exact_values_one_per_slice_in_order(tmp_path, dcmqi):
    volume, liver = dcmqi
    labels = _mixed_labels(volume, liver)
    paths = export(volume, labels, str(tmp_path), ExportOptions(nifti=False, metrics_csv=False))
    assert [os.path.relpath(p, tmp_path) for p in paths] == [f"CT_s2_0bbbf5_labels/CT_s2_0bbbf5_000{k}.png" for k in (1, 2, 3)]
    for k, path in enumerate(paths):
        data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert data.dtype == np.uint8 and data.shape == (512, 512)
        assert np.array_equal(data, np.where(labels.labels[k] == UNANNOTATED, 0, labels.labels[k]))
        assert set(np.unique(data)) == {0, 1, 3}
        assert np.count_nonzero(data[500, 500:] == 3) == k + 1  # slice k went to file k + 1


@pytest.fixture
def doe_series(tmp_path, phantom):
    """A synthetic CT whose description contains the patient's surname."""
    spec = SeriesSpec(patient_name="DOE^JANE", patient_id="PID12345", series_description="Doe abdomen w/ contrast")
    write_series(phantom, str(tmp_path / "doe"), spec)
    volume = _load(tmp_path / "doe")
    labels = LabelMap.empty_like(volume, LabelTable.from_names("liver"))
    labels.labels[volume.voxels > 70] = 1
    return volume, labels


def test_file_names_carry_no_patient_data(tmp_path, doe_series):
    volume, labels = doe_series
    model = tmp_path / "any.unetgui"
    model.write_bytes(b"model bytes")
    everything = ExportOptions(overlay_png=True, image_nifti=True, dicom_seg=True)
    out = tmp_path / "out"
    export(volume, labels, str(out), everything, model_path=str(model))
    names = _files(out)
    model_copy = f"{export_basename(volume)}_model.unetgui"
    assert len(names) == 2 * 12 + 7 and model_copy in names and model_copy.startswith("CT_s1_")
    assert (out / model_copy).read_bytes() == b"model bytes"
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)?\.(png|nii\.gz|dcm|csv|unetgui|itksnap\.txt|ctbl)", name), name
        assert not re.search(r"doe|jane|12345", name, re.IGNORECASE), name
    with_id = tmp_path / "with_id"
    export(volume, labels, str(with_id), ExportOptions(include_patient_id=True))
    names = _files(with_id)
    assert names and all("PID12345" in n for n in names)
    assert not any(re.search(r"doe|jane", n, re.IGNORECASE) for n in names)


def test_basename_uses_series_fields_and_falls_back_to_image():
    def volume(modality="CT", **info):
        return Volume(np.zeros((1, 2, 2), np.int16), np.eye(4), modality, info=SeriesInfo(**info))

    assert export_basename(volume(series_number="3", series_description="Abdomen 5.0 B30f")) == "CT_s3_Abdomen_5_0_B30f"
    assert export_basename(volume(patient_name="Smith^Anna", series_number="3", series_description="ANNA ct")) == "CT_s3"
    assert export_basename(volume(series_description="Ax T1 <../../etc>", modality="MR")) == "MR_Ax_T1_etc"
    assert export_basename(volume(modality="")) == "image"
    assert export_basename(volume()) == "CT_image"
    assert export_basename(volume(series_description="CT Body 3.0")) == "CT_Body_3_0"  # not CT_CT_Body_3_0
    assert export_basename(volume(patient_id="a/b 7", series_number="2"), include_patient_id=True) == "a_b_7_CT_s2"
    # a re-scan with the same number and description is another series: another name
    rescan = [export_basename(volume(series_number="3", series_uid=uid)) for uid in ("1.2.826.0.1.1", "1.2.826.0.1.2")]
    assert rescan == ["CT_s3_" + hashlib.sha256(uid.encode()).hexdigest()[:6] for uid in ("1.2.826.0.1.1", "1.2.826.0.1.2")]


def test_overlay_is_rgb_and_coloured_only_where_labels_are(tmp_path, dcmqi):
    volume, liver = dcmqi
    paths = export(volume, liver, str(tmp_path), ExportOptions(label_png=False, nifti=False, metrics_csv=False,
                                                               overlay_png=True))
    assert [os.path.relpath(p, tmp_path) for p in paths] == [f"CT_s2_0bbbf5_overlay/CT_s2_0bbbf5_000{k}.png" for k in (1, 2, 3)]
    for k, path in enumerate(paths):
        bgr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert bgr.shape == (512, 512, 3) and bgr.dtype == np.uint8
        rgb = bgr[:, :, ::-1].astype(int)
        plain = np.clip(np.round((volume.voxels[k].astype(float) + 160) * 255 / 400), 0, 255)  # W400/L40
        inside = liver.labels[k] == 1
        assert np.abs(rgb[~inside] - plain[~inside, None]).max() <= 1
        difference = np.abs(rgb[inside] - plain[inside, None]).max(axis=1)
        assert np.mean(difference > 10) > 0.95


def test_overlay_of_a_non_ct_image_spans_its_1st_to_99th_percentile(tmp_path):
    ramp = np.tile(np.arange(1000, dtype=np.float32), (2, 10, 1)) * 3.0 + 17.0  # MR-like arbitrary units
    volume = Volume(ramp, np.diag([0.5, 0.5, 3.0, 1.0]), "MR")
    labels = LabelMap.empty_like(volume)
    (first, _) = export(volume, labels, str(tmp_path), ExportOptions(label_png=False, nifti=False, metrics_csv=False,
                                                                     overlay_png=True))
    assert os.path.basename(first) == "MR_image_0001.png"
    gray = cv2.imread(first, cv2.IMREAD_UNCHANGED)[0, :, 0].astype(int)
    low, high = np.percentile(ramp[:, ::4, ::4], [1, 99])
    assert gray[ramp[0, 0] <= low].max() == 0 and gray[ramp[0, 0] >= high].min() == 255
    assert np.all(np.diff(gray) >= 0) and len(np.unique(gray)) > 200


def test_metrics_csv_volumes_and_evaluation_rows(tmp_path, dcmqi):
    volume, liver = dcmqi
    labels = LabelMap(liver.labels.copy(), liver.affine, liver.table.with_label(Label(7, "absent", (1, 2, 3))))
    labels.labels[2, :10, :10] = UNANNOTATED
    evaluation = [{"set": "validation", "label": 1, "dice": 0.91, "iou": 0.83, "hd95_mm": 4.5, "hd95_defined": True,
                   "volume_pred_ml": 70.1, "volume_truth_ml": 69.0},
                  {"set": "validation", "label": 7, "dice": 0.0, "iou": 0.0, "hd95_mm": None, "hd95_defined": False,
                   "volume_pred_ml": 0.2, "volume_truth_ml": 0.0, "case": "ct-3slice"}]
    (path,) = export(volume, labels, str(tmp_path), ExportOptions(label_png=False, nifti=False), evaluation=evaluation)
    assert os.path.basename(path) == "CT_s2_0bbbf5_metrics.csv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    slice_rows = [r for r in rows if r["section"] == "slice_area"]
    pieces = [r for r in rows if r["section"] == "piece"]  # the SEG's liver has specks besides the organ
    assert pieces and {r["label"] for r in pieces} == {"1"} and pieces[0]["piece"] == "1"
    liver_row, absent, eval_liver, eval_absent = [r for r in rows if r["section"] not in ("slice_area", "piece")]
    voxels = int(np.count_nonzero(liver.labels == 1))
    # the segment statistics (formats/statistics.py, the one writer): HU inside the mask and each slice's area
    inside = volume.voxels[liver.labels == 1].astype(float)
    assert float(liver_row["mean"]) == pytest.approx(inside.mean()) and liver_row["unit"] == "HU"
    assert (float(liver_row["minimum"]), float(liver_row["maximum"])) == (inside.min(), inside.max())
    assert float(liver_row["surface_mm2"]) > 0 and liver_row["components"] != ""
    pixel = volume.spacing[1] * volume.spacing[2]
    assert [(int(r["slice"]), float(r["area_mm2"])) for r in slice_rows] == [
        (z + 1, pytest.approx(np.count_nonzero(liver.labels[z] == 1) * pixel)) for z in range(3)]
    assert liver_row["section"] == "labels" and liver_row["name"] == "Liver" and int(liver_row["voxels"]) == voxels
    assert float(liver_row["volume_ml"]) == pytest.approx(voxels * np.prod(volume.spacing) / 1000, rel=1e-9)
    assert (liver_row["slices_with_label"], liver_row["first_slice"], liver_row["last_slice"]) == ("3", "1", "3")
    assert (absent["label"], absent["voxels"], absent["first_slice"]) == ("7", "0", "")
    assert eval_liver["section"] == "evaluation" and eval_liver["name"] == "Liver"
    assert float(eval_liver["dice"]) == 0.91 and float(eval_liver["hd95_mm"]) == 4.5
    assert eval_absent["hd95_mm"] == "" and eval_absent["case"] == "ct-3slice" and eval_absent["name"] == "absent"


def test_metrics_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path, dcmqi):
    from unetgui.core import csvcell

    volume, liver = dcmqi
    names = ["=HYPERLINK(\"http://x\",\"click\")", "+1+2", "-cmd", "@SUM(A1)", "\tTab", "\rCR", "Liver (left)"]
    table = liver.table
    for value, name in enumerate(names, start=2):
        table = table.with_label(Label(value, name, (1, 2, 3)))
    labels = LabelMap(liver.labels.copy(), liver.affine, table)
    evaluation = [{"set": "test", "label": 2, "name": "=1+1", "dice": -0.0, "iou": 0.5, "hd95_mm": -1.5,
                   "hd95_defined": True, "volume_pred_ml": 1.0, "volume_truth_ml": 1.0}]
    (path,) = export(volume, labels, str(tmp_path), ExportOptions(label_png=False, nifti=False), evaluation=evaluation)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    written = [r["name"] for r in rows if r["section"] == "labels"][1:]
    # a tab or a CR is a control character: names are one line each in the CSV (core/textsafe.one_line), so they
    # are gone before csvcell would defuse them
    assert written == ["'" + n for n in names[:4]] + ["Tab", "CR", "Liver (left)"]
    assert rows[-1]["name"] == "'=1+1" and rows[-1]["hd95_mm"] == "-1.5"  # numbers stay numbers
    assert csvcell.escape("-0.25") == "-0.25" and csvcell.escape("a=b") == "a=b"


def test_cancel_mid_way_leaves_the_previous_export_untouched(tmp_path, dcmqi):
    volume, liver = dcmqi
    out = tmp_path / "out"
    options = ExportOptions(overlay_png=True, dicom_seg=True)
    export(volume, liver, str(out), options)
    before = {name: (out / name).read_bytes() for name in _files(out)}
    changed = LabelMap(np.ones_like(liver.labels), liver.affine, liver.table)
    token, seen = CancelToken(), []

    def progress(done, total, message):
        seen.append((done, total))
        if done == 4:
            token.set()

    with pytest.raises(Cancelled):  # replacing the earlier export, as asked
        export(volume, changed, str(out), replace(options, overwrite=True), progress=progress, cancel=token)
    assert seen[-1] == (4, 11)
    assert {name: (out / name).read_bytes() for name in _files(out)} == before  # no temp file, nothing replaced
    token = CancelToken()
    token.set()
    with pytest.raises(Cancelled):
        export(volume, liver, str(tmp_path / "fresh" / "nested"), options, cancel=token)
    assert not (tmp_path / "fresh").exists()  # the folders it created are gone again


def test_dicom_seg_of_a_nifti_volume_is_refused_before_writing(tmp_path, dcmqi):
    volume, liver = dcmqi
    nifti.write_image(volume, str(tmp_path / "ct.nii.gz"))
    from_nifti = nifti.read_image(str(tmp_path / "ct.nii.gz"))
    out = tmp_path / "out"
    with pytest.raises(FormatError, match="DICOM-SEG export needs an image loaded from a DICOM series"):
        export(from_nifti, liver, str(out), ExportOptions(dicom_seg=True, overlay_png=True))
    assert not out.exists()
    with pytest.raises(FormatError, match="nothing to export"):
        export(volume, liver, str(out), NOTHING)
    assert not out.exists()


def test_a_new_export_with_fewer_slices_drops_stale_slice_files(tmp_path, dcmqi):
    volume, liver = dcmqi
    stale = tmp_path / "CT_s2_0bbbf5_labels" / "CT_s2_0bbbf5_0004.png"
    mine = tmp_path / "CT_s2_0bbbf5_labels" / "notes.txt"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    mine.write_text("kept")
    export(volume, liver, str(tmp_path), ExportOptions(nifti=False, metrics_csv=False, overwrite=True))
    assert not stale.exists() and mine.read_text() == "kept"


def _main(monkeypatch, argv: list[str]) -> int:
    """``cli.main`` with the export command registered (until unetgui/cli/__init__.py registers it)."""
    if "export" not in cli.COMMANDS:
        def parser():
            p = argparse.ArgumentParser(prog="unetgui")
            sub = p.add_subparsers(dest="command", required=True)
            export_commands.add_parsers(sub)
            return p
        monkeypatch.setattr(cli, "_parser", parser)
    return cli.main(argv)


def test_cli_export_end_to_end(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    argv = ["export", "--input", str(DCMQI / "ct"), "--labels", str(DCMQI / "seg" / "liver_seg.dcm"), "--output", str(out)]
    assert _main(monkeypatch, argv) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(os.path.relpath(p, out) for p in printed) == _files(out)
    name = "CT_s2_0bbbf5"  # modality, series number, hash of the SeriesInstanceUID
    assert _files(out) == [f"{name}_labels.ctbl", f"{name}_labels.itksnap.txt", f"{name}_labels.nii.gz",
                           f"{name}_labels/{name}_0001.png", f"{name}_labels/{name}_0002.png",
                           f"{name}_labels/{name}_0003.png", f"{name}_metrics.csv", f"{name}_seg.dcm"]
    assert _main(monkeypatch, argv[:5] + ["--output", str(tmp_path / "ov"), "--overlay", "--include-patient-id"]) == 0
    assert _files(tmp_path / "ov") == [f"99000_{name}_overlay/99000_{name}_000{k}.png" for k in (1, 2, 3)]


def test_cli_export_bad_input_is_one_line(tmp_path, monkeypatch, capsys, dcmqi):
    volume, liver = dcmqi
    nifti.write_image(volume, str(tmp_path / "ct.nii.gz"))
    nifti.write_labels(liver, str(tmp_path / "liver.nii.gz"))
    capsys.readouterr()
    for argv in (["--input", str(tmp_path / "missing"), "--labels", str(tmp_path / "liver.nii.gz")],
                 ["--input", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "liver.nii.gz"), "--dicom-seg"]):
        assert _main(monkeypatch, ["export", *argv, "--output", str(tmp_path / "out")]) == 1
        captured = capsys.readouterr()
        errors = [line for line in captured.err.splitlines() if not line.startswith("warning: ")]
        assert captured.out == "" and len(errors) == 1 and errors[0].startswith("unetgui: error: "), captured.err
    assert not (tmp_path / "out").exists()


def test_an_export_never_silently_replaces_another(tmp_path, dcmqi, monkeypatch, capsys):
    """Issue 12, item 7: a different image (NIfTI: no series UID, so the same name) exported into a folder
    that holds an export is refused with nothing written; --overwrite replaces; a target that is a folder
    fails before anything is written."""
    volume, liver = dcmqi
    big = tmp_path / "big.nii.gz"
    small = tmp_path / "small.nii.gz"
    nifti.write_image(volume, str(big))
    nifti.write_image(Volume(volume.voxels[:2].copy(), volume.affine.copy(), "CT"), str(small))
    nifti.write_labels(liver, str(tmp_path / "big_labels.nii.gz"))
    nifti.write_labels(LabelMap(liver.labels[:2].copy(), liver.affine.copy(), liver.table), str(tmp_path / "small_labels.nii.gz"))
    out = tmp_path / "out"
    first = ["export", "--input", str(big), "--labels", str(tmp_path / "big_labels.nii.gz"), "--output", str(out)]
    assert _main(monkeypatch, first) == 0
    before = {name: (out / name).read_bytes() for name in _files(out)}
    second = ["export", "--input", str(small), "--labels", str(tmp_path / "small_labels.nii.gz"), "--output", str(out)]
    capsys.readouterr()
    assert _main(monkeypatch, second) == 1
    err = capsys.readouterr().err
    (error,) = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert "already holds an export with these names" in error and "--overwrite" in error
    assert {name: (out / name).read_bytes() for name in _files(out)} == before
    assert _main(monkeypatch, second + ["--overwrite"]) == 0
    (name,) = {n.split("_labels")[0] for n in _files(out) if n.endswith("_labels.nii.gz")}
    assert nib.load(out / f"{name}_labels.nii.gz").shape[2] == 2
    assert len([n for n in _files(out) if n.endswith(".png")]) == 2  # the third slice's PNG went with the old export

    # a target that is a folder: refused before the NIfTI or anything else is replaced, no folder left behind
    (out / f"{name}_metrics.csv").unlink()
    (out / f"{name}_metrics.csv").mkdir()
    before = {n: (out / n).read_bytes() for n in _files(out)}
    image = nifti.read_image(str(small))
    labels = nifti.read_labels(str(tmp_path / "small_labels.nii.gz"), image)
    with pytest.raises(FormatError, match="is a folder: the export cannot put a file there"):
        export(image, labels, str(out), ExportOptions(overlay_png=True, overwrite=True))
    assert {n: (out / n).read_bytes() for n in _files(out)} == before and not list(out.glob("*_overlay"))


def test_an_annotation_of_background_strokes_alone_reads_back_as_annotation_not_as_a_mask(tmp_path):
    """Issue 26: an exported annotation holding only 0 and 255 (the user painted background only) is not the
    {0, 255} binary mask other tools write: its header says so, and it reads back unchanged."""
    from unetgui.core.annotation import label_file_annotation
    from unetgui.formats import nifti

    volume = Volume(np.zeros((4, 8, 8), np.int16), np.diag([0.8, 0.8, 2.0, 1.0]), "CT")
    annotation = np.full((4, 8, 8), UNANNOTATED, np.uint8)
    annotation[1, 2:5, 2:5] = 0
    labels = LabelMap(np.zeros((4, 8, 8), np.uint8), volume.affine.copy(), LabelTable.from_names("Liver"))
    written = export(volume, labels, str(tmp_path / "out"), ExportOptions(label_png=False, nifti=False,
                                                                          metrics_csv=False, annotation=True),
                     annotation=annotation)
    (path,) = written
    back, notes = nifti.read_labels_noted(path, volume)
    assert np.array_equal(back.labels, annotation) and notes == ()
    assert np.array_equal(label_file_annotation(back.labels)[2], annotation != UNANNOTATED)
    with pytest.raises(FormatError, match="no annotation"):
        export(volume, labels, str(tmp_path / "o2"), ExportOptions(annotation=True))
