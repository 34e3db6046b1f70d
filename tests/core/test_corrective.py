"""Corrective annotation in core (issue 26): strokes annotate their voxels only, the background brush, the
eraser, R, undo/redo, predictions around strokes, label files with 255, and what training then sees."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import phantom_hu
from unetgui.core.annotation import label_file_annotation, label_file_training_labels
from unetgui.core.session import BrushSettings, Session
from unetgui.core.volume import UNANNOTATED, LabelMap, Volume


@pytest.fixture
def session() -> Session:
    s = Session()
    s.open(Volume(phantom_hu((8, 64, 64)), np.eye(4), "CT"))
    return s


def _predict(session: Session) -> np.ndarray:
    """A segmentation of every slice: a square of label 1 (partly wrong, as a model's is)."""
    prediction = np.zeros(session.volume.shape, np.uint8)
    prediction[:, 10:40, 10:40] = 1
    befores = {z: session.labels.labels[z].copy() for z in range(8)}
    session.apply_prediction(list(range(8)), prediction)
    session.commit_prediction(befores)
    return prediction


def _disk(cy, cx, r, shape=(64, 64)) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_the_default_annotates_only_the_strokes_and_training_sees_exactly_them(session):
    assert session.review_on_edit is False  # docs/corrective.md: the default the benchmark chose
    prediction = _predict(session)
    z = session.current_slice
    session.begin_stroke()
    session.paint_segment(50, 50, 50, 50, BrushSettings(radius=3))  # a missed part: foreground
    session.end_stroke()
    session.begin_stroke()
    session.paint_segment(15, 15, 15, 15, BrushSettings(radius=4, background=True))  # a false positive: background
    session.end_stroke()
    fg, bg = _disk(50, 50, 3), _disk(15, 15, 4)
    assert np.array_equal(session.annotated[z], fg | bg) and not session.annotated[np.arange(8) != z].any()
    assert not session.reviewed.any() and session.has_training_data
    assert (session.labels.labels[z][fg] == 1).all() and (session.labels.labels[z][bg] == 0).all()
    rest = ~(fg | bg)
    assert np.array_equal(session.labels.labels[z][rest], prediction[z][rest])  # the prediction stays on screen
    train = session.training_labels()
    assert (train[z][fg] == 1).all() and (train[z][bg] == 0).all() and (train[z][rest] == UNANNOTATED).all()
    assert (train[np.arange(8) != z] == UNANNOTATED).all()
    counts = session.annotation_counts()
    assert counts == {"reviewed": 0, "stroked": 1, "foreground": int(fg.sum()), "background": int(bg.sum())}


def test_R_makes_the_plane_truth_and_undo_redo_keep_the_annotation(session):
    _predict(session)
    z = session.current_slice
    before_labels, before_marks = session.labels.labels.copy(), session.annotated.copy()
    session.begin_stroke()
    session.paint_segment(50, 45, 50, 55, BrushSettings(radius=2))
    session.end_stroke()
    after_labels, after_marks = session.labels.labels.copy(), session.annotated.copy()
    assert session.undo()
    assert np.array_equal(session.labels.labels, before_labels) and np.array_equal(session.annotated, before_marks)
    assert session.redo()
    assert np.array_equal(session.labels.labels, after_labels) and np.array_equal(session.annotated, after_marks)
    session.set_reviewed(z)  # R: the whole plane, prediction included, is now truth
    train = session.training_labels()
    assert np.array_equal(train[z], session.labels.labels[z])
    assert session.annotation_counts()["reviewed"] == 1 and session.annotation_counts()["stroked"] == 0
    session.undo()  # R undone: the strokes stay annotated
    assert (session.training_labels()[z] != UNANNOTATED).sum() == after_marks[z].sum()


def test_the_eraser_takes_annotation_away(session):
    z = session.current_slice
    session.begin_stroke()
    session.paint_segment(30, 20, 30, 40, BrushSettings(radius=4))
    session.end_stroke()
    session.begin_stroke()
    session.paint_segment(30, 30, 30, 30, BrushSettings(radius=4, erase=True))
    session.end_stroke()
    erased = _disk(30, 30, 4)
    assert not session.annotated[z][erased].any() and (session.labels.labels[z][erased] == 0).all()
    assert (session.training_labels()[z][erased] == UNANNOTATED).all()
    assert session.annotated[z][30, 20] and session.labels.labels[z, 30, 20] == 1


def test_review_on_edit_marks_the_plane_reviewed(session):
    session.set_review_on_edit(True)
    _predict(session)
    z = session.current_slice
    session.begin_stroke()
    session.paint_segment(50, 50, 50, 50, BrushSettings(radius=3, background=True))
    session.end_stroke()
    assert session.reviewed[z] and np.array_equal(session.training_labels()[z], session.labels.labels[z])
    session.undo()
    assert not session.reviewed[z] and not session.annotated.any()


def test_a_segmentation_never_overwrites_annotated_voxels_and_its_undo_keeps_them(session):
    z = session.current_slice
    session.begin_stroke()
    session.paint_segment(20, 20, 20, 20, BrushSettings(radius=3, background=True))  # "no structure here"
    session.end_stroke()
    session.begin_stroke()
    session.paint_segment(50, 50, 50, 50, BrushSettings(radius=3))
    session.end_stroke()
    marks = session.annotated[z].copy()
    painted = session.labels.labels[z].copy()
    prediction = np.ones((8, 64, 64), np.uint8) * 0
    prediction[:, 10:60, 10:60] = 1
    befores = {k: session.labels.labels[k].copy() for k in range(8)}
    written = session.apply_prediction(list(range(8)), prediction)
    assert z in written  # a slice with strokes is not reviewed: the rest of it is segmented
    assert np.array_equal(session.labels.labels[z][marks], painted[marks])
    assert (session.labels.labels[z][~marks] == prediction[z][~marks]).all()
    session.commit_prediction(befores)
    session.undo()  # the segmentation goes, the strokes stay
    assert np.array_equal(session.labels.labels[z], painted) and np.array_equal(session.annotated[z], marks)


def test_fill_and_copy_annotate_what_they_change(session):
    z = session.current_slice
    session.flood_fill(5, 5)
    assert session.annotated[z].all() and not session.reviewed[z]
    session.set_slice(z + 1)
    session.mark_empty()  # "nothing here" is always a review: the user looked at the whole plane
    assert session.reviewed[z + 1]
    session.set_slice(z - 2)
    session.begin_stroke()
    session.paint_segment(10, 10, 10, 20, BrushSettings(radius=2))
    session.end_stroke()
    source = session.labels.labels[z - 2] == 1
    session.set_slice(z - 1)
    session.copy_from(z - 2)  # copy previous: the copied voxels are the user's edit, nothing else of the plane
    assert np.array_equal(session.annotated[z - 1], source) and not session.reviewed[z - 1]


def test_a_sparse_label_file_annotates_exactly_its_voxels_that_are_not_255(session):
    """Strokes in a sagittal plane (column x = 30) and one complete axial slice, 255 elsewhere."""
    file = np.full((8, 64, 64), UNANNOTATED, np.uint8)
    file[2:6, 10:40, 30] = 1
    file[2:6, 40:50, 30] = 0
    file[7] = 0
    file[7, 5:9, 5:9] = 1
    values, reviewed, annotated = label_file_annotation(file)
    assert np.flatnonzero(reviewed).tolist() == [7]  # the whole slice: reviewed; the strokes: the mask
    assert np.array_equal(annotated | reviewed[:, None, None], file != UNANNOTATED) and not annotated[7].any()
    assert not (values == UNANNOTATED).any()
    assert np.array_equal(label_file_training_labels(file), file)  # what `train --labels` trains on
    session.open(session.volume, LabelMap(values, np.eye(4)), reviewed=reviewed, annotated=annotated)
    assert np.array_equal(session.training_labels(), file)  # what the app trains on: the same


def test_a_dense_label_file_annotates_every_slice():
    """No 255: every voxel is the annotator's word, the empty slices too ("none of the structures here"), as
    `train --dataset` reads a data set's files."""
    file = np.zeros((6, 16, 16), np.uint8)
    file[2, 4:8, 4:8] = 1
    values, reviewed, annotated = label_file_annotation(file)
    assert annotated is None and reviewed.all()
    assert np.array_equal(label_file_training_labels(file), file)


def test_open_checks_the_annotation_mask(session):
    with pytest.raises(ValueError, match="annotation mask"):
        session.open(session.volume, annotated=np.zeros((8, 64, 63), bool))


def test_a_suggestion_counts_only_the_uncertainty_strokes_left_unanswered(session):
    prediction = np.zeros((8, 64, 64), np.uint8)
    unsure = np.zeros((8, 64, 64), np.uint8)
    unsure[:, 20:30, 20:30] = 200  # the model is unsure in the same place on every slice
    session.apply_prediction(list(range(8)), prediction, unsure, np.full(8, 100.0))
    session.set_slice(3)
    session.begin_stroke()
    session.paint_segment(25, 25, 25, 25, BrushSettings(radius=9, background=True))  # answers all of slice 3's doubt
    session.end_stroke()
    picks = [p.slice for p in session.suggestions()]
    assert 3 not in picks[:6] and picks[-1] == 3


def test_the_eraser_keeps_the_annotation_of_another_label_it_does_not_erase(session):
    z = session.current_slice
    session.add_label("Kidney")
    session.set_active_label(2)
    session.begin_stroke()
    session.paint_segment(30, 10, 30, 50, BrushSettings(radius=4))  # a stroke of label 2
    session.end_stroke()
    kidney = session.annotated[z].copy()
    session.set_active_label(1)
    session.begin_stroke()
    session.paint_segment(20, 30, 40, 30, BrushSettings(radius=4, erase=True))  # erasing label 1 across it
    session.end_stroke()
    assert np.array_equal(session.annotated[z], kidney)  # label 2 stays on screen, so it stays annotated
    prediction = np.zeros((8, 64, 64), np.uint8)
    session.apply_prediction(list(range(8)), prediction)
    assert (session.labels.labels[z][kidney] == 2).all()  # and no prediction overwrites it


def test_a_sparse_label_files_whole_slices_are_reviewed_not_marked(session):
    file = np.full((8, 64, 64), UNANNOTATED, np.uint8)
    file[3] = 0
    file[3, 10:20, 10:20] = 1
    file[5, 30:33, 30:33] = 1
    values, reviewed, annotated = label_file_annotation(file)
    assert reviewed[3] and not annotated[3].any() and annotated[5].sum() == 9
    session.open(session.volume, LabelMap(values, np.eye(4)), reviewed=reviewed, annotated=annotated)
    session.set_reviewed(3, False)  # R again: the slice leaves training
    assert (session.training_labels()[3] == UNANNOTATED).all()
