"""Editing in the coronal and sagittal planes (core, no Qt): strokes, fills, copy, interpolation, undo/redo,
review flags per plane, partial annotation of the axial slices a reviewed plane crosses, predictions that
leave reviewed planes alone."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import phantom_hu
from unetgui.core.annotation import training_labels
from unetgui.core.session import BrushSettings, Session, plane_of
from unetgui.core.volume import UNANNOTATED, Volume

SHAPE = (12, 40, 48)


@pytest.fixture
def session() -> Session:
    s = Session()
    s.set_review_on_edit(True)  # these tests are about reviewed planes (strokes only: tests/core/test_corrective.py)
    s.open(Volume(phantom_hu(SHAPE), np.eye(4), "CT"))
    return s


def test_a_coronal_stroke_paints_its_plane_and_undoes_exactly(session):
    session.set_axis(1)
    y = session.index
    assert y == SHAPE[1] // 2 and session.current_slice == SHAPE[0] // 2
    original = session.labels.labels.copy()
    session.begin_stroke()
    session.paint_segment(2, 10, 9, 30, BrushSettings(radius=1.5))  # rows are z, columns x
    step = session.end_stroke()
    painted = session.labels.labels != original
    assert painted[:, y].any() and not painted[:, np.arange(SHAPE[1]) != y].any()  # only row y of each slice
    assert set(np.flatnonzero(painted.any(axis=(1, 2)))) == set(step.slices) and min(step.slices) <= 2
    assert session.reviewed_coronal[y] and not session.reviewed.any()  # the plane is reviewed, no axial slice
    after = session.labels.labels.copy()
    assert session.undo() and np.array_equal(session.labels.labels, original) and not session.reviewed_coronal[y]
    assert session.redo() and np.array_equal(session.labels.labels, after) and session.reviewed_coronal[y]
    assert step.nbytes <= 2 * 12 * 48  # the patch is the plane's box, not whole slices


def test_a_reviewed_sagittal_plane_annotates_the_axial_slices_it_crosses_partly(session):
    session.set_axis(2)
    x = session.index
    session.begin_stroke()
    session.paint_segment(3, 10, 8, 10, BrushSettings(radius=2))  # rows z, columns y
    session.end_stroke()
    train = session.training_labels()
    assert (train[:, :, x] != UNANNOTATED).all()  # the whole sagittal plane is annotated
    assert (np.delete(train, x, axis=2) == UNANNOTATED).all()  # the rest of every axial slice is not
    assert (train[3:9, 10, x] == 1).all()
    session.set_axis(0)
    session.set_test(4)  # a test slice stays out of training, crossed or not
    assert (session.training_labels()[4] == UNANNOTATED).all()
    assert session.has_training_data


def test_training_labels_of_reviewed_planes_combine():
    labels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = training_labels(labels, np.array([True, False]), np.zeros(2, bool), np.array([False, True, False]),
                          np.array([False, False, False, True]))
    assert (out[0] == labels[0]).all()  # a reviewed axial slice
    assert out[1, 1].tolist() == labels[1, 1].tolist() and out[1, 0, 3] == labels[1, 0, 3]
    assert out[1, 0, 0] == UNANNOTATED and out[1, 2, 1] == UNANNOTATED


def test_fill_copy_and_interpolate_work_along_the_shown_axis(session):
    session.set_axis(2)
    labels = session.labels.labels
    plane_of(labels, 2, 10)[2:10, 5:15] = 1
    plane_of(labels, 2, 20)[2:10, 10:20] = 1
    session.set_index(15)
    step = session.interpolate()
    assert step is not None and session.reviewed_sagittal[11:20].all() and not session.reviewed_sagittal[[10, 20]].any()
    assert all(plane_of(labels, 2, x)[5, 12] == 1 for x in range(11, 20))
    assert session.undo() and not (labels[:, :, 11:20] == 1).any()
    session.set_index(30)
    assert session.copy_from(29) is None  # nothing of the active label there: no step
    session.set_index(11)
    session.copy_from(10)
    assert (plane_of(labels, 2, 11) == plane_of(labels, 2, 10)).all() and session.reviewed_sagittal[11]
    session.set_axis(1)
    session.set_index(0)
    ring = np.zeros((12, 48), bool)
    ring[2:10, 5:25] = True
    ring[4:8, 10:20] = False
    plane_of(labels, 1, 0)[ring] = 1
    session.fill_holes()
    assert (plane_of(labels, 1, 0)[4:8, 10:20] == 1).all() and session.reviewed_coronal[0]
    session.set_index(1)
    session.flood_fill(0, 0)
    assert (plane_of(labels, 1, 1) == 1).all() and session.reviewed_coronal[1]


def test_a_prediction_leaves_reviewed_planes_and_a_drag_in_progress_alone(session):
    session.set_axis(2)
    x = session.index
    session.begin_stroke()
    session.paint_segment(0, 5, 11, 5, BrushSettings(radius=1))
    session.end_stroke()
    mine = session.labels.labels[:, :, x].copy()
    session.set_axis(1)
    session.begin_stroke()  # a coronal drag in progress while the segmentation streams in
    session.paint_segment(6, 3, 6, 3, BrushSettings(radius=1))
    y = session.index
    drag = session.labels.labels[:, y, :].copy()
    predicted = np.full((SHAPE[0], *SHAPE[1:]), 2, np.uint8)
    written = session.apply_prediction(list(range(SHAPE[0])), predicted)
    assert written == tuple(range(SHAPE[0]))
    labels = session.labels.labels
    assert np.array_equal(labels[:, :, x], mine) and np.array_equal(labels[:, y, :], drag)
    assert (labels[:, :y, :x] == 2).all()
    session.end_stroke()


def test_review_flags_of_any_plane_undo(session):
    session.set_reviewed(7, True, axis=2)
    session.set_reviewed(3, True, axis=1)
    assert session.reviewed_sagittal[7] and session.reviewed_coronal[3]
    assert session.undo() and not session.reviewed_coronal[3]
    assert session.undo() and not session.reviewed_sagittal[7]
    assert session.redo() and session.reviewed_sagittal[7]


def test_the_position_is_kept_per_axis(session):
    session.set_axis(1)
    session.set_index(3)
    session.set_axis(2)
    session.set_index(40)
    session.set_axis(0)
    session.set_slice(1)
    assert session.position == [1, 3, 40]
    session.set_axis(2)
    assert session.index == 40
    session.set_index(999)
    assert session.index == SHAPE[2] - 1
    with pytest.raises(ValueError):
        session.set_axis(3)


# -- autosave and project snapshots ------------------------------------------------------------------------

def _project(tmp_path):
    from unetgui.core.volume import LabelTable
    from unetgui.formats import nifti
    from unetgui.project.store import Project

    path = str(tmp_path / "ct.nii.gz")
    nifti.write_image(Volume(phantom_hu(SHAPE), np.diag([0.8, 0.8, 2.5, 1.0]), "CT"), path)
    volume = nifti.read_image(path)
    project = Project.create(str(tmp_path / "proj"), LabelTable.from_names("Liver"))
    project.add_series(path, volume, "nifti")
    return project, volume


def test_plane_edits_are_journaled_as_boxes_and_replayed_with_their_review_flags(tmp_path):
    import os

    from unetgui.project import journal
    from unetgui.project.autosave import Autosaver
    from unetgui.project.store import Project

    project, volume = _project(tmp_path)
    session = Session()
    session.set_review_on_edit(True)
    session.open(volume, table=project.table)
    Autosaver(session, project, "s1")
    size = os.path.getsize(project.journal_path("s1"))
    session.set_axis(2)
    session.begin_stroke()
    session.paint_segment(0, 5, 11, 30, BrushSettings(radius=2))  # across every axial slice
    session.end_stroke()
    session.set_axis(1)
    session.set_index(7)
    session.fill_holes()  # nothing to fill: no record
    session.set_reviewed(7, True, axis=1)
    grown = os.path.getsize(project.journal_path("s1")) - size
    assert grown < 2000  # a box of one sagittal plane, not 12 whole slices
    records = journal.replay(project.journal_path("s1"), project._tokens["s1"], SHAPE)
    assert records[0].origin is not None and records[0].planes.shape[2] == 1
    saved = Project.open(project.root).read_labels("s1")
    assert np.array_equal(saved.labels, session.labels.labels)
    assert np.array_equal(saved.planes[0], session.reviewed_coronal) and saved.planes[0][7]
    assert np.array_equal(saved.planes[1], session.reviewed_sagittal) and saved.planes[1].sum() == 1
    session.undo()  # the coronal review flag
    session.undo()  # the stroke
    saved = Project.open(project.root).read_labels("s1")
    assert not saved.labels.any() and not saved.planes[0].any() and not saved.planes[1].any()


def test_a_snapshot_keeps_the_plane_flags_and_an_older_snapshot_has_none(tmp_path):
    import io

    from unetgui.project.store import Project

    project, volume = _project(tmp_path)
    coronal, sagittal = np.zeros(SHAPE[1], bool), np.zeros(SHAPE[2], bool)
    coronal[3], sagittal[[1, 2]] = True, True
    labels = np.zeros(SHAPE, np.uint8)
    project.save_labels("s1", labels, np.zeros(SHAPE[0], bool), np.zeros(SHAPE[0], bool), (coronal, sagittal))
    saved = project.read_labels("s1")
    assert saved.planes[0].tolist() == coronal.tolist() and saved.planes[1].tolist() == sagittal.tolist()
    old = io.BytesIO()  # as written before planes had flags
    np.savez_compressed(old, labels=labels, reviewed=np.zeros(SHAPE[0], bool), test=np.zeros(SHAPE[0], bool),
                        token=np.array("t0"))
    with open(project.labels_path("s1"), "wb") as f:
        f.write(old.getvalue())
    saved = Project.open(project.root).read_labels("s1")
    assert not saved.planes[0].any() and saved.planes[0].shape == (SHAPE[1],) and saved.planes[1].shape == (SHAPE[2],)


def test_a_box_record_that_does_not_fit_the_series_counts_as_damaged(tmp_path):
    import json
    import struct
    import zlib

    from unetgui.project import journal

    path = str(tmp_path / "j")
    j = journal.Journal(path, "s1", (3, 8, 8), "tok")
    flags = np.zeros(3, bool)
    j.append_box((1, 2, 3), np.ones((2, 1, 4), np.uint8), flags, flags, (np.ones(8, bool), np.zeros(8, bool)))
    with pytest.raises(ValueError):
        j.append_box((2, 0, 0), np.ones((2, 1, 1), np.uint8), flags, flags)
    meta = json.dumps({"slices": [], "box": [2, 0, 0, 5, 1, 1], "reviewed": "000", "test": "000"}).encode()
    payload = struct.pack("<I", len(meta)) + meta + zlib.compress(b"\1" * 5)
    j._file.write(journal._HEAD.pack(journal.RECORD, len(payload), zlib.crc32(payload)) + payload)
    j.close()
    found = journal.scan(path, "tok", (3, 8, 8))
    assert len(found.records) == 1 and found.damaged == 1
    (record,) = found.records
    labels = np.zeros((3, 8, 8), np.uint8)
    record.apply(labels)
    assert labels.sum() == 8 and (labels[1:3, 2, 3:7] == 1).all() and record.coronal.all()


# -- training and segmenting in the plane of the annotation --------------------------------------------------

def _sagittal_case():
    """A CT-like volume whose structure is annotated only in a few sagittal planes (as reviewed in that view)."""
    rng = np.random.default_rng(0)
    z, y, x = 16, 32, 40
    hu = rng.normal(0, 20, (z, y, x)).astype(np.float32)
    truth = np.zeros((z, y, x), np.uint8)
    zz, yy, xx = np.mgrid[0:z, 0:y, 0:x]
    truth[((zz - 8) / 6) ** 2 + ((yy - 16) / 9) ** 2 + ((xx - 20) / 12) ** 2 < 1] = 1
    hu[truth == 1] += 200
    labels = np.full(truth.shape, UNANNOTATED, np.uint8)
    for plane in (12, 20, 26):
        labels[:, :, plane] = truth[:, :, plane]
    return hu.astype(np.int16), truth, labels


def test_annotation_in_sagittal_planes_trains_and_segments_in_sagittal_planes():
    from unetgui.core.volume import LabelTable
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.inference import Predictor
    from unetgui.engine.planner import choose_axis
    from unetgui.engine.training_run import AnnotatedVolume, build_trainer

    hu, truth, labels = _sagittal_case()
    assert choose_axis([labels])[0] == 2
    full = np.where(np.arange(16)[:, None, None] % 4 == 0, truth, UNANNOTATED).astype(np.uint8)
    assert choose_axis([full]) == (0, "")  # reviewed axial slices: axial, as always
    volume = AnnotatedVolume("v", hu, labels, "CT", (0.8, 0.7), 2.5)
    trainer = build_trainer([volume], LabelTable.from_names("ball"), "cpu", None,
                            {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "threads": 1})
    assert trainer.plan.axis == 2 and "sagittal planes" in trainer.plan.summary()
    assert len(trainer.train_refs) == 3 and all(c.shape == (40, 16, 32) for c in trainer.cases)  # (x, z, y)
    for _ in trainer.run():
        pass
    saved = trainer.best_checkpoint()
    assert saved.preprocessing.axis == 2
    again = model_file.Checkpoint(saved.config, saved.preprocessing, saved.labels, saved.weights, saved.info)
    predictor = Predictor(again, device="cpu", runtime="torch", threads=1)
    batches = list(predictor.run(hu, [3, 5], None))
    assert all(not b.slices for b in batches[:-1]) and batches[-1].slices == (3, 5)
    assert batches[-1].labels.shape == (2, 32, 40) and batches[-1].probabilities.shape == (2, 2, 32, 40)
    whole = predictor.predict(hu, keep_probabilities=False)
    assert whole.labels.shape == hu.shape and np.array_equal(whole.labels[[3, 5]], batches[-1].labels)


def test_the_axis_is_kept_in_the_model_file_and_old_files_are_axial(tmp_path):
    from engine_fixtures import tiny_checkpoint
    from unetgui.engine import checkpoint as model_file
    from unetgui.engine.preprocessing import Preprocessing

    model = tiny_checkpoint()
    model.preprocessing = Preprocessing(mode="ct", axis=1)
    model_file.save(model, str(tmp_path / "m.unetgui"))
    assert model_file.load(str(tmp_path / "m.unetgui")).preprocessing.axis == 1
    assert Preprocessing.from_json({"mode": "ct"}).axis == 0
    with pytest.raises(Exception, match="axis"):
        Preprocessing(axis=3)


def test_the_session_tells_the_dicom_seg_who_made_each_slice(session):
    from unetgui.formats.dicom_seg import algorithm_type

    z = SHAPE[0]
    predicted = np.zeros((z, *SHAPE[1:]), np.uint8)
    predicted[:, 10:20, 10:20] = 1
    befores = {k: session.labels.labels[k].copy() for k in range(z)}
    session.apply_prediction(list(range(z)), predicted)
    session.commit_prediction(befores)  # as the app does when a segmentation ends: one undo step
    edited, made = session.provenance()
    assert made.all() and not edited.any()
    present = np.ones(z, bool)
    assert algorithm_type(present, edited, made).value == "AUTOMATIC"
    session.set_slice(3)
    session.begin_stroke()
    session.paint_segment(30, 30, 30, 35, BrushSettings(radius=2))  # a correction
    session.end_stroke()
    edited, made = session.provenance()
    assert edited[3] and made[3] and algorithm_type(present, edited, made).value == "SEMIAUTOMATIC"
    session.undo()
    session.undo()  # the segmentation itself: nothing of it is left
    edited, made = session.provenance()
    assert not made.any() and algorithm_type(present, edited, made).value == "MANUAL"


def test_the_user_picks_the_planes_on_the_command_line(tmp_path, capsys):
    from lits_synth import _save, synth_case
    from unetgui import cli
    from unetgui.engine import checkpoint as model_file

    hu, labels, affine = synth_case(1, 48, 8)
    _save(hu, affine, tmp_path / "ct.nii.gz")
    _save(labels, affine, tmp_path / "liver.nii.gz")
    out = tmp_path / "m.unetgui"
    argv = ["train", "--images", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "liver.nii.gz"), "--output",
            str(out), "--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu", "--threads", "1"]
    assert cli.main([*argv, "--axis", "coronal"]) == 0
    assert "coronal planes" in capsys.readouterr().out
    assert model_file.load(str(out)).preprocessing.axis == 1
    assert cli.main(argv) == 0  # whole annotated volume: axial, as always
    assert model_file.load(str(out)).preprocessing.axis == 0
    assert cli.main(["predict", "--model", str(out), "--input", str(tmp_path / "ct.nii.gz"), "--output",
                     str(tmp_path / "p.nii.gz")]) == 0


def test_undoing_a_segmentation_keeps_a_plane_stroke_made_while_it_ran(session):
    z = SHAPE[0]
    befores = {k: session.labels.labels[k].copy() for k in range(z)}
    session.apply_prediction(list(range(z // 2)), np.full((z // 2, *SHAPE[1:]), 1, np.uint8))
    session.set_axis(1)  # a coronal stroke while the segmentation streams in
    session.begin_stroke()
    session.paint_segment(1, 5, 10, 5, BrushSettings(radius=1, erase=True))
    session.end_stroke()
    y = session.index
    stroke = session.labels.labels[:, y].copy()
    session.apply_prediction(list(range(z // 2, z)), np.full((z - z // 2, *SHAPE[1:]), 1, np.uint8))
    assert np.array_equal(session.labels.labels[:, y], stroke)  # the rest of the prediction leaves it alone
    session.commit_prediction(befores)
    assert session.undo()  # the segmentation
    assert np.array_equal(session.labels.labels[:, y], stroke) and session.reviewed_coronal[y]
    assert not np.delete(session.labels.labels, y, axis=1).any()


def test_what_a_segmentation_wrote_is_kept_in_the_project_for_the_dicom_seg(tmp_path, capsys):
    """A segmentation's slices are journaled with the labels: a reopened project's DICOM-SEG (unetgui export
    --project) still says AUTOMATIC for what the model made and SEMIAUTOMATIC once a slice was corrected."""
    import pydicom

    from conftest import DATA
    from unetgui import cli
    from unetgui.core.volume import LabelTable
    from unetgui.formats.dicom import load_series, scan
    from unetgui.project.autosave import Autosaver
    from unetgui.project.store import Project

    ct = DATA / "dcmqi-ct-3slice-liver-seg" / "ct"
    volume = load_series(scan(str(ct)).series[0])
    project = Project.create(str(tmp_path / "proj"), LabelTable.from_names("Liver"))
    project.add_series(str(ct), volume, "dicom")
    session = Session()
    session.open(volume, table=project.table)
    Autosaver(session, project, "s1")
    befores = {k: session.labels.labels[k].copy() for k in range(3)}
    predicted = np.zeros(volume.shape, np.uint8)
    predicted[:, 200:300, 200:300] = 1
    session.apply_prediction([0, 1, 2], predicted)
    session.commit_prediction(befores)
    project.save()  # project.json: the export reads the series from it; the labels are in the journal
    saved = Project.open(project.root).read_labels("s1")
    assert saved.predicted.tolist() == [True, True, True]

    def algorithm(out) -> str:
        assert cli.main(["export", "--project", project.root, "--output", str(out), "--dicom-seg"]) == 0
        seg = next(p for p in capsys.readouterr().out.split() if p.endswith("_seg.dcm"))
        return pydicom.dcmread(seg).SegmentSequence[0].SegmentAlgorithmType

    assert algorithm(tmp_path / "a") == "AUTOMATIC"
    session.set_slice(1)
    session.begin_stroke()
    session.paint_segment(250, 310, 250, 320, BrushSettings(radius=3))
    session.end_stroke()
    assert algorithm(tmp_path / "b") == "SEMIAUTOMATIC"
