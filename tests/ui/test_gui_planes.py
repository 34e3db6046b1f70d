"""Editing in the coronal and sagittal views of the real window, offscreen, with mouse and key events: the
stroke's pixels, undo, fill and review marks per plane; autosave recovery after SIGKILL in the middle of a
sagittal drag (the real window in a child process); training on sagittal-only annotation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from conftest import phantom_hu
from gui_helpers import _widget_point
from unetgui.core.volume import LabelTable, Volume

pytestmark = pytest.mark.gui


def _open(window, qtbot, shape=(10, 64, 80), spacing=(2.0, 0.8, 0.8)):  # noqa: F811
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    window.session.open(Volume(phantom_hu(shape), affine, "CT"))
    qtbot.wait(50)


def _drag(qtbot, view, points):
    """A left drag through ``points`` at a hand's pace (pyqtgraph drops moves closer than 10 ms apart)."""
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    target = view.viewport()

    def send(kind, p, button, buttons):
        QApplication.sendEvent(target, QMouseEvent(kind, QPointF(p), QPointF(target.mapToGlobal(p)), button, buttons,
                                                   Qt.KeyboardModifier.NoModifier))

    send(QEvent.Type.MouseButtonPress, points[0], Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    for p in points[1:]:
        qtbot.wait(12)
        send(QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    qtbot.wait(20)


def _line(view, row, col0, col1, n=12):
    return [_widget_point(view, row, c) for c in np.linspace(col0, col1, n)]


def test_a_coronal_drag_paints_its_plane_and_ctrl_z_takes_it_back(window, qtbot):  # noqa: F811
    _open(window, qtbot)
    window.view.set_plane("coronal")
    assert window.plane.currentText() == "Coronal" and window.slider.slider.maximum() == 63
    window.tools.tool = "brush"
    window.tools.brush_size = 4
    s = window.session
    s.set_review_on_edit(True)  # the rule where an edit makes its plane truth (strokes only: test_gui_corrective)
    y = s.index
    _drag(qtbot, window.view, _line(window.view, 5, 20, 50))  # rows of a coronal plane are z, columns x
    painted = s.labels.labels[:, y, :] == s.active_label
    zz, xx = np.mgrid[0:10, 0:80]
    distance = np.hypot(zz - 5, np.clip(xx, 20, 50) - xx)
    assert painted[distance <= 1.0].all() and not painted[distance > 2.6].any()
    assert not np.delete(s.labels.labels, y, axis=1).any()  # no other coronal plane
    assert s.reviewed_coronal[y] and not s.reviewed.any()
    assert window.slider.slider.marks[y] and "reviewed" in window.slider.label.text()
    window.view.set_plane("axial")  # the axial slices it crossed are partly annotated
    assert window.slider.slider.partial.all() and "partly" in window.slider.label.text()
    window.view.set_plane("coronal")
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not s.labels.labels.any() and not s.reviewed_coronal[y]


def test_a_sagittal_ring_filled_with_a_click_and_marked_reviewed_with_r(window, qtbot):  # noqa: F811
    _open(window, qtbot)
    view, s = window.view, window.session
    view.set_plane("sagittal")
    s.set_index(30)
    window.tools.tool = "brush"
    window.tools.brush_size = 2
    ring = [(2, 20), (2, 40), (7, 40), (7, 20), (2, 20)]  # rows z, columns y
    points = []
    for (r0, c0), (r1, c1) in zip(ring, ring[1:]):
        points += [_widget_point(view, r, c) for r, c in zip(np.linspace(r0, r1, 10), np.linspace(c0, c1, 10))]
    _drag(qtbot, view, points)
    plane = s.labels.labels[:, :, 30]
    assert plane[2, 20:41].all() and plane[7, 20:41].all() and not plane[4, 30]
    window.tools.tool = "fill"
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(view, 4.5, 30))
    assert (s.labels.labels[3:7, 22:39, 30] == 1).all() and not s.labels.labels[:, :, 29].any()
    s.set_index(31)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert s.reviewed_sagittal[31] and window.slider.slider.marks[31]
    qtbot.keyClick(view, Qt.Key.Key_C)  # copy previous: plane 30 onto plane 31
    assert np.array_equal(s.labels.labels[:, :, 31], s.labels.labels[:, :, 30])
    qtbot.keyClick(view, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)  # test slices are axial
    assert not s.test.any() and "axial" in window.statusBar().currentMessage()


@pytest.mark.parametrize("review_on_edit", [False, True])
def test_sigkill_in_the_middle_of_a_sagittal_drag_loses_only_that_stroke(tmp_path, review_on_edit):
    from unetgui.formats import nifti
    from unetgui.project.store import Project

    image = str(tmp_path / "ct.nii.gz")
    nifti.write_image(Volume(phantom_hu((12, 48, 56)), np.diag([0.8, 0.8, 2.5, 1.0]), "CT"), image)
    volume = nifti.read_image(image)
    project = Project.create(str(tmp_path / "proj"), LabelTable.from_names("Liver"))
    project.add_series(image, volume, "nifti")
    project.state["review_on_edit"] = review_on_edit  # the project's edit mode (strokes only, or plane reviewed)
    project.save()
    project.unlock()
    kill_at = 6
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "QT_QPA_PLATFORM": "offscreen",
           "UNETGUI_DATA": str(tmp_path / "data")}
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parents[1] / "gui_planes_child.py"), project.root,
                              str(tmp_path / "settings"), str(kill_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    done = {}
    try:
        for line in child.stdout:
            k, what, *rest = line.split()
            if what == "moving":
                break
            done[int(k)] = rest
        else:
            pytest.fail(f"the child ended without painting: {child.stderr.read()[-2000:]}")
        os.kill(child.pid, signal.SIGKILL)  # in the middle of stroke `kill_at`
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        child.stderr.close()
    assert sorted(done) == list(range(kill_at))
    recovered = Project.open(project.root)
    assert recovered.lock_owner().state == "crashed"
    saved = recovered.load_labels("s1")
    crc, flags, marks = done[kill_at - 1]
    assert zlib.crc32(saved.labels.tobytes()) == int(crc)  # every finished stroke, nothing of the cut one
    assert zlib.crc32(saved.annotated.tobytes()) == int(marks) and saved.annotated.any()  # and their annotation
    assert "".join("1" if f else "0" for f in saved.planes[1]) == flags
    assert saved.planes[1].sum() == (kill_at if review_on_edit else 0)
    assert not saved.reviewed.any() and saved.labels.any()


def test_training_on_sagittal_annotation_only_learns_in_sagittal_planes(window, qtbot, monkeypatch):  # noqa: F811
    from dataclasses import replace

    from unetgui.engine import planner

    # a fixed amount of training (4 epochs of 10 steps), not a time budget: the Dice below must not depend
    # on how busy the machine is
    monkeypatch.setattr(planner.TrainingPlan, "with_step_seconds", lambda plan, seconds: replace(
        plan, train=replace(plan.train, steps_per_epoch=10, epochs=4)))
    s = window.session
    z, y, x = 12, 40, 48
    zz, yy, xx = np.mgrid[0:z, 0:y, 0:x]
    ball = ((zz - 6) / 5) ** 2 + ((yy - 20) / 12) ** 2 + ((xx - 24) / 14) ** 2 < 1
    hu = np.where(ball, 180, 0).astype(np.int16) + np.random.default_rng(0).normal(0, 15, ball.shape).astype(np.int16)
    s.open(Volume(hu, np.diag([0.8, 0.8, 2.5, 1.0]), "CT"))
    s.set_review_on_edit(True)  # each painted sagittal plane is complete: it is truth
    window.view.set_plane("sagittal")
    window.tools.tool = "brush"
    window.tools.brush_size = 1  # one pixel: each drag paints one row of the ball's section exactly
    for plane in (14, 20, 24, 30, 34):  # annotated in sagittal planes only, with the mouse, as a user would
        s.set_index(plane)
        for row in range(z):
            cols = np.flatnonzero(ball[row, :, plane])
            if cols.size:
                _drag(qtbot, window.view, [_widget_point(window.view, row, c) for c in np.linspace(cols[0], cols[-1], 4)])
        assert np.array_equal(s.labels.labels[:, :, plane], ball[:, :, plane]) and s.reviewed_sagittal[plane]
    assert s.reviewed_sagittal.sum() == 5 and not s.reviewed.any()
    panel = window.training_panel
    assert "5 sagittal" in panel.counts.text() and panel.planes.currentText() == "auto"
    # the panel as it opens (its budget is not reached: the epochs above end first): the planner picks the planes
    panel.train_button.click()
    qtbot.waitUntil(lambda: window.models.training, timeout=10_000)
    qtbot.waitUntil(lambda: not window.models.training, timeout=180_000)
    run = window.models.last_run
    assert window.models.run_started.plan.axis == 2 and window.models.checkpoint.preprocessing.axis == 2
    assert len(run.training) + len(run.validation) == 5  # the five sagittal planes
    mine = ball[:, :, [14, 20, 24, 30, 34]].astype(np.uint8)
    # the panel re-segments what is not reviewed after training (its default): every axial slice here
    qtbot.waitUntil(lambda: not window.models.busy_segmenting and s.uncertainty is not None, timeout=60_000)
    assert np.array_equal(s.labels.labels[:, :, [14, 20, 24, 30, 34]], mine)  # the reviewed planes are kept
    predicted = s.labels.labels == 1
    dice = 2 * (predicted & ball).sum() / (predicted.sum() + ball.sum())
    assert dice > 0.5, dice
    panel.planes.setCurrentText("coronal")  # or the user picks them
    assert panel.overrides()["axis"] == "coronal"


def test_planes_reviewed_while_a_sagittal_model_trains_join_it(window, qtbot):  # noqa: F811
    s = window.session
    shape = (10, 32, 40)
    zz, yy, xx = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    ball = ((zz - 5) / 4) ** 2 + ((yy - 16) / 10) ** 2 + ((xx - 20) / 12) ** 2 < 1
    s.open(Volume(np.where(ball, 200, 0).astype(np.int16), np.diag([0.8, 0.8, 2.5, 1.0]), "CT"))
    s.set_axis(2)
    for plane in (12, 18, 24):
        s.labels.labels[:, :, plane] = ball[:, :, plane]
        s.set_reviewed(plane, axis=2)
    failures = []
    window.models.failed.connect(failures.append)
    window.models.train(None, {"epochs": 3, "steps_per_epoch": 2, "batch_size": 2, "threads": 1, "preset": "small"},
                        False, "cpu")
    s.labels.labels[:, :, 28] = ball[:, :, 28]  # reviewed while it trains: joins at the next epoch
    s.set_reviewed(28, axis=2)
    qtbot.waitUntil(lambda: not window.models.training, timeout=120_000)
    run = window.models.last_run
    assert not failures and window.models.run_started.plan.axis == 2
    assert len(run.training) + len(run.validation) == 4  # the planes of the model's axis, one more
