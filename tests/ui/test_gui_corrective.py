"""Corrective annotation in the real window (issue 26), with mouse and key events: a foreground and a
background stroke on a predicted plane annotate exactly their voxels, training receives exactly those, R makes
the plane truth, undo/redo, the edit mode remembered per project, save/open, a label file with 255, export."""

from __future__ import annotations

import numpy as np
import pytest

from gui_helpers import _drag, _line, _nifti, _open, _open_phantom
from unetgui.core.session import Session
from unetgui.core.volume import UNANNOTATED, LabelMap, Volume

pytestmark = pytest.mark.gui


def _predict(session) -> np.ndarray:
    """A model's segmentation of every slice (a square: partly wrong), as Segment volume writes it."""
    prediction = np.zeros(session.volume.shape, np.uint8)
    prediction[:, 15:45, 15:45] = 1
    befores = {z: session.labels.labels[z].copy() for z in range(session.volume.shape[0])}
    session.apply_prediction(list(range(session.volume.shape[0])), prediction)
    session.commit_prediction(befores)
    return prediction


def _record_segments(monkeypatch, session) -> list:
    """The segments the view hands the session (what the mouse painted), to replay them elsewhere."""
    segments = []
    real = Session.paint_segment

    def paint(self, r0, c0, r1, c1, brush):
        segments.append((r0, c0, r1, c1, brush))
        return real(self, r0, c0, r1, c1, brush)

    monkeypatch.setattr(Session, "paint_segment", paint)
    return segments


def _strokes(window, qtbot) -> tuple[int, np.ndarray]:
    from PySide6.QtCore import Qt

    view = window.view
    for note in list(window.io._notes):  # "loaded with warnings" (a NIfTI has no modality): read, closed
        note.close()
    window.activateWindow()  # the keys go to the window again, as after a click on it
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    z = window.session.current_slice
    qtbot.keyClick(view, Qt.Key.Key_B)
    window.tools.brush_size = 6
    _drag(qtbot, view, _line(view, 52, 50, 70), pace_ms=12)  # a part the model missed (a hand's pace: a drag)
    qtbot.keyClick(view, Qt.Key.Key_B, Qt.KeyboardModifier.ShiftModifier)
    assert window.tools.tool == "background"
    _drag(qtbot, view, _line(view, 20, 20, 35), pace_ms=12)  # a part the model painted wrongly
    return z, window.session.annotated[z].copy()


def test_strokes_annotate_exactly_their_voxels_and_training_receives_exactly_them(window, qtbot, monkeypatch):
    from unetgui.tasks import train as train_task

    _open_phantom(window, qtbot)
    s = window.session
    prediction = _predict(s)
    segments = _record_segments(monkeypatch, s)
    z, marks = _strokes(window, qtbot)
    # voxel by voxel: the same segments painted on a fresh session give the same annotation; nothing else is
    replay = Session()
    replay.open(s.volume)
    replay.apply_prediction(list(range(10)), prediction)
    replay.set_slice(z)
    for stroke in ([seg for seg in segments if not seg[4].background], [seg for seg in segments if seg[4].background]):
        replay.begin_stroke()
        for seg in stroke:
            replay.paint_segment(*seg)
        replay.end_stroke()
    assert np.array_equal(replay.annotated, s.annotated) and np.array_equal(replay.labels.labels, s.labels.labels)
    yy, xx = np.mgrid[0:64, 0:80]
    near_fg = np.hypot(yy - 52, np.clip(xx, 50, 70) - xx) <= 3.6
    near_bg = np.hypot(yy - 20, np.clip(xx, 20, 35) - xx) <= 3.6
    assert marks[np.hypot(yy - 52, np.clip(xx, 50, 70) - xx) <= 2.0].all() and not marks[~(near_fg | near_bg)].any()
    assert (s.labels.labels[z][marks & near_fg] == 1).all() and (s.labels.labels[z][marks & near_bg] == 0).all()
    assert np.array_equal(s.labels.labels[z][~marks], prediction[z][~marks])  # the rest: the model's, shown
    assert not s.reviewed.any() and not s.annotated[np.arange(10) != z].any()
    assert "Strokes on 1 more slice" in window.training_panel.counts.text()
    assert "strokes" in window.area.slider.label.text()

    seen = []

    def fake_train(request, source, **kwargs):  # what the real Train button hands the training task
        seen.append(source.load().volumes[0].labels.copy())

    monkeypatch.setattr(train_task, "train", fake_train)
    window.training_panel.train_button.click()
    qtbot.waitUntil(lambda: not window.models.training, timeout=10_000)
    expected = np.full(s.volume.shape, UNANNOTATED, np.uint8)
    expected[z][marks] = s.labels.labels[z][marks]
    assert len(seen) == 1 and np.array_equal(seen[0], expected)


def test_R_makes_the_plane_truth_and_undo_redo_take_strokes_back(window, qtbot):
    from PySide6.QtCore import Qt

    _open_phantom(window, qtbot)
    s, view = window.session, window.view
    _predict(s)
    z, marks = _strokes(window, qtbot)
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert s.reviewed[z] and np.array_equal(s.training_labels()[z], s.labels.labels[z])
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # R
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the background stroke
    assert not s.reviewed[z] and s.annotated[z].sum() < marks.sum() and s.annotated[z].any()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(s.annotated[z], marks)


def test_the_edit_mode_is_remembered_per_project_and_annotation_survives_save_and_open(window, qtbot, tmp_path):
    from unetgui.ui.main_window import MainWindow

    _open(window, qtbot, _nifti(tmp_path, "a.nii.gz"))
    s = window.session
    assert not s.review_on_edit and not window.actions.review_on_edit.isChecked()  # the default: strokes only
    z, marks = _strokes(window, qtbot)
    window.actions.review_on_edit.trigger()  # the user's choice for this project
    assert s.review_on_edit and window.projects.project.state["review_on_edit"] is True
    root = str(tmp_path / "corrected")
    window.projects.save_as(root)
    labels = s.labels.labels.copy()
    window.close()

    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    again.projects.open_project(root)
    qtbot.waitUntil(lambda: again.session.is_open and not again.runner.busy, timeout=30_000)
    assert np.array_equal(again.session.annotated[z], marks) and again.session.annotated.sum() == marks.sum()
    assert np.array_equal(again.session.labels.labels, labels) and not again.session.reviewed.any()
    assert again.session.review_on_edit and again.actions.review_on_edit.isChecked()
    again.io.open_path(_nifti(tmp_path, "b.nii.gz", (6, 48, 48), seed=1))  # another study: asked, a new project
    qtbot.waitUntil(lambda: again.projects.question is not None, timeout=30_000)
    again.projects.answers["new"].click()
    qtbot.waitUntil(lambda: again.session.volume is not None and again.session.volume.shape[0] == 6
                    and not again.runner.busy, timeout=30_000)
    assert not again.session.review_on_edit  # a new project starts with the default
    again.close()


def test_a_sparse_label_file_opens_with_exactly_its_annotated_voxels(window, qtbot, tmp_path):
    """A file from another tool: strokes in one sagittal plane, 255 elsewhere."""
    from unetgui.formats import nifti

    path = _nifti(tmp_path, "img.nii.gz")
    _open(window, qtbot, path)
    s = window.session
    file = np.full(s.volume.shape, UNANNOTATED, np.uint8)
    file[2:8, 10:40, 33] = 1
    file[2:8, 40:50, 33] = 0
    labels = str(tmp_path / "strokes.nii.gz")
    nifti.write_labels(LabelMap(file, s.volume.affine.copy()), labels)
    window.io.open_labels(labels)
    qtbot.waitUntil(lambda: s.annotated.any() and not window.runner.busy, timeout=30_000)
    assert np.array_equal(s.annotated, file != UNANNOTATED) and not s.reviewed.any()
    assert (s.labels.labels != UNANNOTATED).all()
    # what the app's Train hands the engine and what `unetgui train --image --labels` does: the file, exactly
    from unetgui.tasks.sources import FileSource, ProjectSource

    app = ProjectSource.of_session(s).load().volumes[0].labels
    cli = FileSource((path,), (labels,)).load().volumes[0].labels
    assert np.array_equal(app, file) and np.array_equal(cli, file)


def test_export_writes_the_annotation_as_a_255_encoded_nifti(window, qtbot, tmp_path):
    from unetgui.formats import nifti

    _open(window, qtbot, _nifti(tmp_path, "a.nii.gz"))
    s = window.session
    _predict(s)
    z, marks = _strokes(window, qtbot)
    window.show_export()
    dialog = window.export_dialog
    dialog.folder.setText(str(tmp_path / "out"))
    dialog.annotation.setChecked(True)
    dialog.export_button.click()
    qtbot.waitUntil(lambda: dialog.job is None or not window.runner.busy, timeout=30_000)
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=30_000)
    written = sorted((tmp_path / "out").glob("*_annotation.nii.gz"))
    assert len(written) == 1
    back = nifti.read_labels(str(written[0]), Volume(s.volume.voxels, s.volume.affine)).labels
    assert np.array_equal(back, s.annotation_labels()) and (back[z][~marks] == UNANNOTATED).all()
    labels = sorted((tmp_path / "out").glob("*_labels.nii.gz"))
    assert not (nifti.read_labels(str(labels[0]), Volume(s.volume.voxels, s.volume.affine)).labels == UNANNOTATED).any()


def test_a_dense_label_file_annotates_every_slice_and_the_window_says_so(window, qtbot, tmp_path):
    from unetgui.formats import nifti

    _open(window, qtbot, _nifti(tmp_path, "img.nii.gz"))
    s = window.session
    file = np.zeros(s.volume.shape, np.uint8)
    file[4, 20:30, 20:30] = 1  # a complete segmentation: the other slices hold none of the structure
    labels = str(tmp_path / "dense.nii.gz")
    nifti.write_labels(LabelMap(file, s.volume.affine.copy()), labels)
    window.io.open_labels(labels)
    qtbot.waitUntil(lambda: s.reviewed.all() and not window.runner.busy, timeout=30_000)
    assert np.array_equal(s.training_labels(), file) and not s.annotated.any()
    assert "every slice counts as reviewed" in window.statusBar().currentMessage()


def test_choosing_the_eraser_says_what_teaches_not_this_structure(window, qtbot):
    from PySide6.QtCore import Qt

    _open_phantom(window, qtbot)
    qtbot.keyClick(window.view, Qt.Key.Key_E)
    assert window.tools.tool == "eraser" and "Background (Shift+B)" in window.statusBar().currentMessage()
