"""Issue 24, for DICOM-SEG, `tune --storage` and the writers that embed text from an input: crafted files in
tmp_path, through the API and the CLI (exit 0 or a one-line exit 1; never 3, "a bug in unetgui").

- A SEG whose frames refer to a segment number it does not define keeps those voxels under a named fallback label,
  with a warning (BINARY frames and LABELMAP pixel values); numbers are parsed with bounds; names and code
  meanings lose their control characters.
- A storage URL that cannot be used, a file that is not a database, another program's database or study: one line,
  exit 1, nothing written. A search never claims a model it did not write, and its best.json trains.
- The SEG, CSV, JSON and ONNX writers keep control characters out of their text and the names read back.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3

import nibabel as nib
import numpy as np
import pydicom
import pytest

from unetgui.core.textsafe import one_line

from conftest import DATA
from unetgui import cli
from unetgui.core.errors import FormatError
from unetgui.core.volume import Label, LabelMap, LabelTable
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom_seg import describe_segments, read_dicom_seg, write_dicom_seg

DCMQI = DATA / "dcmqi-ct-3slice-liver-seg"
EVIL = "liver\x1b[31m\nevil"
#: control characters a line-based or DICOM text must not carry (tab included: DICOM LO forbids it)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def ct():
    (series,) = scan(str(DCMQI / "ct")).series
    return load_series(series)


def _frames_refer_to(tmp_path, number: int, frame: int = 1):
    """The dcmqi liver SEG with one frame re-pointed at segment ``number``, which the file does not define."""
    ds = pydicom.dcmread(str(DCMQI / "seg" / "liver_seg.dcm"))
    ds.PerFrameFunctionalGroupsSequence[frame].SegmentIdentificationSequence[0].ReferencedSegmentNumber = number
    path = tmp_path / "seg" / f"to_{number}.dcm"
    path.parent.mkdir(exist_ok=True)
    ds.save_as(str(path))
    return path


def _one_line_error(capsys) -> str:
    """The command's error: one line (progress lines aside), no traceback, not "a bug in unetgui"."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("unetgui:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]) and "Traceback" not in err, err
    return errors[0]


# -- 1. silently wrong results: segments the file does not define ------------------------------------

def test_frames_of_an_undefined_segment_are_kept_as_a_named_label_with_a_warning(tmp_path, ct):
    labels, notes = read_dicom_seg(str(_frames_refer_to(tmp_path, 7)), ct)
    assert labels.table.get(7).name == "Segment 7 (not defined in the file)"
    kept = int(np.count_nonzero(labels.labels == 7))
    assert kept in (36233, 35645, 35220)  # one whole frame of the README's counts
    assert int(np.count_nonzero(labels.labels == 1)) + kept == 107098  # no voxel lost
    (note,) = notes
    assert note.startswith("to_7.dcm: 1 frame(s) refer to segment 7") and f"{kept:,} voxel(s)" in note


def test_a_segment_removed_from_the_segment_list_keeps_its_voxels(tmp_path, ct):
    full, _ = read_dicom_seg(str(DCMQI / "seg" / "partial_overlaps_seg.dcm"), ct)
    ds = pydicom.dcmread(str(DCMQI / "seg" / "partial_overlaps_seg.dcm"))
    ds.SegmentSequence = [item for item in ds.SegmentSequence if item.SegmentNumber != 3]
    ds.save_as(str(tmp_path / "no3.dcm"))
    labels, notes = read_dicom_seg(str(tmp_path / "no3.dcm"), ct)
    assert labels.table.get(3).name == "Segment 3 (not defined in the file)"
    assert np.array_equal(labels.labels, full.labels)  # the same voxels, the same values
    assert any("refer to segment 3, which the file does not define" in n for n in notes)


def test_every_frame_of_an_undefined_segment_number_zero_is_kept(tmp_path, ct):
    ds = pydicom.dcmread(str(DCMQI / "seg" / "liver_seg.dcm"))
    for item in ds.PerFrameFunctionalGroupsSequence:
        item.SegmentIdentificationSequence[0].ReferencedSegmentNumber = 0
    ds.save_as(str(tmp_path / "zero.dcm"))
    labels, notes = read_dicom_seg(str(tmp_path / "zero.dcm"), ct)
    (value,) = [v for v in labels.table.values if labels.table.get(v).name.startswith("Segment 0")]
    assert int(np.count_nonzero(labels.labels == value)) == 107098 and "3 frame(s)" in notes[-1]


def test_labelmap_pixel_values_of_an_undefined_segment_are_kept(tmp_path, ct):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(str(p)) for p in sorted((DCMQI / "ct").glob("*.dcm"))]
    for source in sources:
        if "SpecificCharacterSet" in source and not source.SpecificCharacterSet:
            del source.SpecificCharacterSet
    pixels = np.zeros((3, 512, 512), np.uint8)
    pixels[0, :10, :10], pixels[1, 20:30, 20:30] = 1, 2
    segments = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=f"s{n}", segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n in (1, 2)]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.LABELMAP,
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="x", manufacturer_model_name="x", software_versions="1", device_serial_number="0")
    seg.SegmentSequence = [item for item in seg.SegmentSequence if item.SegmentNumber != 1]  # drawn, not defined
    seg.save_as(str(tmp_path / "labelmap.dcm"))
    labels, notes = read_dicom_seg(str(tmp_path / "labelmap.dcm"), ct)
    assert labels.table.get(1).name == "Segment 1 (not defined in the file)" and labels.table.get(2).name == "s2"
    assert [int(np.count_nonzero(labels.labels == v)) for v in (1, 2)] == [100, 100]
    assert "refer to segment 1" in notes[0]


def test_the_cli_exports_the_kept_voxels_and_says_so(tmp_path, ct, capsys):
    seg = _frames_refer_to(tmp_path, 7)
    assert cli.main(["export", "--input", str(DCMQI / "ct"), "--labels", str(seg), "--output", str(tmp_path / "out"),
                     "--nifti", "--metrics"]) == 0
    captured = capsys.readouterr()
    assert "refer to segment 7, which the file does not define" in captured.err
    (nii,) = (tmp_path / "out").glob("*_labels.nii.gz")
    assert np.count_nonzero(np.asarray(nib.load(str(nii)).dataobj) == 7) > 35000
    (table,) = (tmp_path / "out").glob("*_metrics.csv")
    assert "Segment 7 (not defined in the file)" in table.read_text()


@pytest.mark.parametrize("tracking", ["unetgui-label-" + "9" * 5000, "unetgui-label-300"])
def test_a_label_value_beyond_bounds_in_a_tracking_id_is_one_line(tmp_path, ct, capsys, tracking):
    ds = pydicom.dcmread(str(DCMQI / "seg" / "liver_seg.dcm"))
    ds.SegmentSequence[0].TrackingID = tracking
    ds.save_as(str(tmp_path / "huge.dcm"))
    with pytest.raises(FormatError, match=r"^huge\.dcm: segment 1") as caught:
        read_dicom_seg(str(tmp_path / "huge.dcm"), ct)
    assert len(str(caught.value)) < 300
    assert cli.main(["export", "--input", str(DCMQI / "ct"), "--labels", str(tmp_path / "huge.dcm"),
                     "--output", str(tmp_path / "out")]) == 1
    assert "huge.dcm" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("frames", [0, 99999, 2**31 - 1])
def test_a_frame_count_the_file_does_not_hold_is_one_line(tmp_path, ct, frames):
    ds = pydicom.dcmread(str(DCMQI / "seg" / "liver_seg.dcm"))
    ds.NumberOfFrames = frames
    ds.save_as(str(tmp_path / "frames.dcm"))
    with pytest.raises(FormatError, match=r"^frames\.dcm: NumberOfFrames"):
        read_dicom_seg(str(tmp_path / "frames.dcm"), ct)


def test_names_and_code_meanings_with_control_characters_are_read_clean_and_shown_escaped(tmp_path, ct, capsys):
    ds = pydicom.dcmread(str(DCMQI / "seg" / "liver_seg.dcm"))
    ds.SegmentSequence[0].SegmentLabel = EVIL
    ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning = "Liver\x1b]0;owned\x07\r\nx"
    folder = tmp_path / "study"
    folder.mkdir()
    for image in (DCMQI / "ct").glob("*.dcm"):
        (folder / image.name).write_bytes(image.read_bytes())
    ds.save_as(str(folder / "evil.dcm"))
    labels, _ = read_dicom_seg(str(folder / "evil.dcm"), ct)
    label = labels.table.get(1)
    assert label.name == "liver [31m evil" and label.code("type")[2] == "Liver ]0;owned   x"
    for line in describe_segments(str(folder / "evil.dcm")):
        assert not CONTROL.search(line)
    assert cli.main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "liver [31m evil" in out and "\x1b" not in out and "\x07" not in out
    # exported again (SEG and CSV), the names stay clean and read back
    assert cli.main(["export", "--input", str(DCMQI / "ct"), "--labels", str(folder / "evil.dcm"),
                     "--output", str(tmp_path / "out"), "--dicom-seg", "--metrics"]) == 0
    (seg,) = (tmp_path / "out").glob("*_seg.dcm")
    (table,) = (tmp_path / "out").glob("*_metrics.csv")
    text = table.read_bytes().decode("utf-8")
    assert not CONTROL.search(text.replace("\r\n", ""))
    assert {r["name"] for r in csv.DictReader(io.StringIO(text, newline=""))} == {"liver [31m evil"}  # + slice rows
    back, _ = read_dicom_seg(str(seg), ct)
    assert back.table.get(1).name == "liver [31m evil" and np.array_equal(back.labels, labels.labels)


# -- 2. storage and foreign data ----------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _quiet_optuna():
    """Optuna's INFO lines go to the stream its handler caught when first used (an earlier test's capture, closed
    by now): kept quiet here, so that what stderr says is unetgui's."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(before)


TUNE_FAST = ["--trial-minutes", "0.04", "--device", "cpu", "--threads", "1", "--params", "learning_rate"]


@pytest.fixture(scope="module")
def lits(tmp_path_factory):
    from lits_synth import write_lits

    folder = tmp_path_factory.mktemp("lits")
    write_lits(folder, 4, size=48, slices=(8, 10))
    return folder


def _tree(*folders) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), str(folder)) for folder in folders
                  for d, _, files in os.walk(folder) for f in files)


def _tune(lits, out, *more) -> list[str]:
    return ["tune", "--dataset", str(lits), "--output", str(out), "--test-fraction", "0", *TUNE_FAST, *more]


@pytest.mark.parametrize("kind", ["scheme", "folder", "not_a_database", "other_program", "garbage", "port", "driver"])
def test_a_storage_that_cannot_be_used_is_one_line_and_nothing_is_written(tmp_path, lits, capsys, kind):
    (tmp_path / "notes.db").write_bytes(b"these are my notes, not a database\n" * 20)
    connection = sqlite3.connect(str(tmp_path / "app.db"))
    connection.execute("CREATE TABLE patients (name TEXT)")
    connection.commit()
    connection.close()
    url = {"scheme": "nonsense://x", "folder": f"sqlite:///{tmp_path}/no/such/dir/x.db",
           "not_a_database": f"sqlite:///{tmp_path}/notes.db", "other_program": f"sqlite:///{tmp_path}/app.db",
           "garbage": "::not a url::", "port": "postgresql://user:secret@localhost:notaport/db",
           "driver": "postgresql://user:secret@127.0.0.1:1/db"}[kind]
    before, data_before = _tree(tmp_path), _tree(lits)
    app_db = (tmp_path / "app.db").read_bytes()
    assert cli.main(_tune(lits, tmp_path / "best.unetgui", "--trials", "1", "--storage", url)) == 1
    err = _one_line_error(capsys)
    assert "storage" in err and "secret" not in err
    from unetgui.core.errors import UnetguiError
    from unetgui.engine import tuning

    with pytest.raises(UnetguiError, match="^storage "):  # the API: the same one line
        tuning.open_study(url, "unetgui")
    assert _tree(tmp_path) == before and _tree(lits) == data_before  # nothing written, not even a cache
    assert (tmp_path / "app.db").read_bytes() == app_db


def _foreign(kind: str, url: str) -> None:
    import optuna

    if kind == "other_params":
        study = optuna.create_study(storage=url, study_name="unetgui", direction="maximize")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    elif kind == "our_names_no_attrs":
        study = optuna.create_study(storage=url, study_name="unetgui", direction="maximize")
        study.optimize(lambda t: t.suggest_float("learning_rate", 3e-4, 1e-2, log=True) * 50, n_trials=2)
    elif kind == "minimise":
        optuna.create_study(storage=url, study_name="unetgui", direction="minimize")
    else:  # ours, but another program wrote a trial with settings outside the search space into it
        from unetgui.engine import tuning

        study = tuning.open_study(url, "unetgui")
        study.add_trial(optuna.trial.create_trial(
            params={"depth": 3}, distributions={"depth": optuna.distributions.IntDistribution(2, 5)}, value=0.9,
            user_attrs={"overrides": {"depth": 99}}))


@pytest.mark.parametrize("kind", ["other_params", "our_names_no_attrs", "minimise", "tampered"])
def test_a_study_of_another_program_is_refused_and_nothing_is_written(tmp_path, lits, capsys, kind):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    _foreign(kind, url)
    (tmp_path / "best.unetgui").write_bytes(b"an older file")
    before = _tree(tmp_path)
    stamp = (tmp_path / "shared.db").stat().st_mtime_ns
    assert cli.main(_tune(lits, tmp_path / "best.unetgui", "--trials", "1", "--storage", url)) == 1
    assert "is not a unetgui search" in _one_line_error(capsys)
    assert _tree(tmp_path) == before and (tmp_path / "shared.db").stat().st_mtime_ns == stamp
    assert (tmp_path / "best.unetgui").read_bytes() == b"an older file"


def test_a_study_of_an_older_unetgui_is_taken_and_marked(tmp_path):
    import optuna

    from unetgui.engine import tuning

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = optuna.create_study(storage=url, study_name="unetgui", direction="maximize")
    old.add_trial(optuna.trial.create_trial(
        params={"learning_rate": 0.002}, value=0.8, user_attrs={"overrides": {"learning_rate": 0.002}, "minutes": 0.1},
        distributions={"learning_rate": optuna.distributions.FloatDistribution(3e-4, 1e-2, log=True)}))
    study = tuning.open_study(url, "unetgui")
    assert tuning.study_id(study) and tuning.best_overrides(study) == {"learning_rate": 0.002}
    assert tuning.study_id(tuning.open_study(url, "unetgui")) == tuning.study_id(study)  # marked once


def test_a_search_never_claims_a_model_it_did_not_write_and_its_best_json_trains(tmp_path, lits, capsys):
    """The study's best trial ran elsewhere (another machine on a shared storage): this process's trial is not
    better, so no model is written here, and none is claimed; an older file at --output is not offered."""
    import optuna

    from unetgui.engine import checkpoint, tuning

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = tuning.open_study(url, "unetgui")
    study.add_trial(optuna.trial.create_trial(
        params={"learning_rate": 0.003}, value=1.0, user_attrs={"overrides": {"learning_rate": 0.003}, "minutes": 1.0},
        distributions={"learning_rate": optuna.distributions.FloatDistribution(3e-4, 1e-2, log=True)}))
    out = tmp_path / "best.unetgui"
    out.write_bytes(b"an older file")
    assert cli.main(_tune(lits, out, "--trials", "1", "--storage", url)) == 0
    captured = capsys.readouterr()
    wrote = [line for line in captured.out.splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 1 and str(out) not in wrote[0] and "best.best.json" in wrote[0]
    assert "no model: finished; the best trial's model is not in" in captured.err
    assert out.read_bytes() == b"an older file"
    best = json.loads((tmp_path / "best.best.json").read_text())
    assert best["trial"] == 0 and best["overrides"] == {"learning_rate": 0.003}
    trained = tmp_path / "again.unetgui"
    assert cli.main(["train", "--dataset", str(lits), "--output", str(trained), "--config", str(tmp_path / "best.best.json"),
                     "--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu", "--test-fraction", "0"]) == 0
    assert checkpoint.load(str(trained)).config.depth >= 2


# -- 3. writers that embed text from an input ----------------------------------------------------------

def _evil_labels(ct) -> LabelMap:
    codes = (("category", "SCT", "85756007", "Tissue"), ("type", "SCT", "10200004", "Liver\x1b[0m\n" + "x" * 80))
    table = LabelTable((Label(1, EVIL, (200, 40, 40), codes), Label(2, "k" * 100, (40, 200, 40))))
    labels = LabelMap.empty_like(ct, table)
    labels.labels[:, 100:140, 100:140] = 1
    labels.labels[:, 200:210, 200:210] = 2
    return labels


def test_dicom_seg_text_has_no_control_characters_and_keeps_to_its_lengths(tmp_path, ct):
    write_dicom_seg(_evil_labels(ct), ct, str(tmp_path / "s.dcm"), series_description="series\x1b[2J\n" + "d" * 90)
    ds = pydicom.dcmread(str(tmp_path / "s.dcm"))
    texts = [ds.SeriesDescription] + [item.SegmentLabel for item in ds.SegmentSequence] + \
        [item.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for item in ds.SegmentSequence]
    assert all(not CONTROL.search(t) and len(t) <= 64 for t in texts), texts
    back, _ = read_dicom_seg(str(tmp_path / "s.dcm"), ct)
    assert back.table.get(1).name == "liver [31m evil" and back.table.get(2).name == "k" * 64
    assert back.table.get(1).code("type")[2] == ("Liver [0m " + "x" * 80)[:64]
    assert np.array_equal(back.labels, _evil_labels(ct).labels)


def test_the_metrics_csv_keeps_a_name_on_its_row_and_reads_back(ct):
    from unetgui.formats.export import metrics_csv

    text = metrics_csv(ct, _evil_labels(ct), [{"set": "test\x1b[1m", "label": 1, "dice": 0.5}])
    assert not CONTROL.search(text.replace("\r\n", ""))
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["section"] != "slice_area"]
    assert len(text.split("\r\n")) == 1 + len(rows) + (text.count("slice_area,")) + 1  # one line per row
    assert [r["name"] for r in rows] == ["liver [31m evil", "k" * 100, "liver [31m evil"]
    assert rows[2]["set"] == "test [1m"


def test_a_json_output_escapes_control_characters_and_reads_back(tmp_path):
    from unetgui.core import atomic

    table = LabelTable((Label(1, EVIL + "\u202e", (1, 2, 3)),))
    atomic.write_json(str(tmp_path / "t.json"), {"labels": table.to_json()})
    raw = (tmp_path / "t.json").read_text(encoding="utf-8")
    assert not CONTROL.search(raw.replace("\n", ""))  # json.dumps' own line breaks (indent) only
    back = LabelTable.from_json(json.loads(raw)["labels"])  # names are read one line (core.textsafe.one_line)
    assert [(lab.value, lab.name, lab.color) for lab in back] == [(lab.value, one_line(lab.name), lab.color) for lab in table]


def test_onnx_metadata_escapes_label_names_and_reads_them_back(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.checkpoint import Checkpoint
    from unetgui.engine.preprocessing import Preprocessing
    from unetgui.engine.unet import UNet, UNetConfig

    table = LabelTable((Label(1, EVIL, (1, 2, 3)), Label(2, "kidney\u202eright", (4, 5, 6))))
    model_file.save(Checkpoint.from_model(UNet(UNetConfig(classes=3, depth=2, base=4)), Preprocessing(), table),
                    str(tmp_path / "m.unetgui"))
    assert cli.main(["export-model", "--model", str(tmp_path / "m.unetgui"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert "\x1b" not in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert all(not CONTROL.search(v) for k, v in meta.items() if k != "unetgui.usage")
    back = LabelTable.from_json(json.loads(meta["unetgui.labels"]))  # names are read one line
    assert [(lab.value, lab.name, lab.color) for lab in back] == [(lab.value, one_line(lab.name), lab.color) for lab in table]


def test_a_seg_with_a_damaged_value_representation_is_one_line(tmp_path, data_dir):
    """Found by the 4,868-case fuzz run: a bit flip that turns a VR into "TS" raised NotImplementedError from
    pydicom's lazy parsing after the file was opened (exit 3)."""
    from unetgui.core.errors import FormatError
    from unetgui.formats.dicom_seg import read_dicom_seg
    from unetgui.formats.inputs import open_image

    raw = (data_dir / "dcmqi-ct-3slice-liver-seg" / "seg" / "liver_seg.dcm").read_bytes()
    tag = b"\x62\x00\x0d\x00US"  # (0062,000D) RecommendedDisplayCIELabValue, explicit VR little endian
    assert tag in raw
    path = tmp_path / "seg.dcm"
    path.write_bytes(raw.replace(tag, b"\x62\x00\x0d\x00TS", 1))
    ct = open_image(str(data_dir / "dcmqi-ct-3slice-liver-seg" / "ct"))
    with pytest.raises(FormatError, match="not a readable DICOM segmentation"):
        read_dicom_seg(str(path), ct.volume)
