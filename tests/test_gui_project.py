"""Projects in the window: every opened image joins a project, edits survive switching series, closing,
save-as and a crash; the welcome panel; the sample and the installed bundle's self-test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import phantom_hu
from test_gui_viewer import window  # noqa: F401 - the fixture
from unetgui.core.session import BrushSettings
from unetgui.core.volume import Volume
from unetgui.formats import nifti
from unetgui.project.store import Project

REPO = Path(__file__).resolve().parents[1]


def _nifti(tmp_path: Path, name: str, shape=(10, 64, 80), seed=0) -> str:
    path = str(tmp_path / name)
    nifti.write_image(Volume(phantom_hu(shape, seed), np.diag([0.8, 0.8, 2.0, 1.0]), "CT"), path)
    return path


def _open(window, qtbot, path: str) -> None:  # noqa: F811
    before = window.session.generation
    window.io.open_path(path)
    qtbot.waitUntil(lambda: window.session.generation > before and not window.runner.busy, timeout=30_000)


def _paint(window, z: int, y: float, x: float) -> None:  # noqa: F811
    window.session.set_slice(z)
    window.session.begin_stroke()
    window.session.paint_segment(y, x, y, x + 12, BrushSettings(radius=4))
    window.session.end_stroke()


def test_welcome_panel_offers_the_three_ways_in(window):  # noqa: F811
    from PySide6.QtWidgets import QPushButton

    assert window.welcome.isVisible() and not window.view.isVisible()
    texts = [b.text() for b in window.welcome.findChildren(QPushButton)]
    assert texts == ["Open DICOM folder...", "Open project...", "Try the sample"]


def test_opened_images_join_a_project_and_keep_their_edits(window, qtbot, tmp_path):  # noqa: F811
    a, b = _nifti(tmp_path, "a.nii.gz"), _nifti(tmp_path, "b.nii.gz", (6, 48, 48), seed=1)
    _open(window, qtbot, a)
    assert window.projects.untitled and "Untitled project" in window.windowTitle()
    _paint(window, 3, 20, 20)
    edited = window.session.labels.labels.copy()
    _open(window, qtbot, b)  # opening another image never asks and never loses the edits
    assert window.session.volume.shape == (6, 48, 48) and window.session.labels.labels.max() == 0
    assert [e.source for e in window.projects.project.series] == [a, b]
    before = window.session.generation
    window.projects.show_series("s1")
    qtbot.waitUntil(lambda: window.session.generation > before and not window.runner.busy, timeout=30_000)
    assert np.array_equal(window.session.labels.labels, edited) and window.session.reviewed[3]


def test_project_saved_as_and_reopened_in_a_new_window_is_identical(window, qtbot, tmp_path):  # noqa: F811
    from engine_fixtures import tiny_checkpoint
    from unetgui.ui.main_window import MainWindow

    _open(window, qtbot, _nifti(tmp_path, "a.nii.gz"))
    window.session.add_label("Kidney")
    _paint(window, 2, 20, 20)
    window.session.active_label = 2
    _paint(window, 5, 30, 40)
    window.session.set_test(5)
    checkpoint = tiny_checkpoint()
    window.models.set_model(checkpoint)  # a trained model is kept in the project
    root = str(tmp_path / "my project")
    window.projects.save_as(root)
    assert window.projects.project.root == root and "my project" in window.windowTitle()
    _paint(window, 7, 10, 10)  # edits after "save as" go to the new folder (journal)
    labels, reviewed, test = window.session.labels.labels.copy(), window.session.reviewed.copy(), window.session.test.copy()
    table = window.session.table
    window.close()
    assert not os.path.exists(os.path.join(root, ".lock"))

    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    again.projects.open_project(root)
    qtbot.waitUntil(lambda: again.session.is_open and again.models.checkpoint is not None and not again.runner.busy,
                    timeout=30_000)
    assert np.array_equal(again.session.labels.labels, labels)
    assert np.array_equal(again.session.reviewed, reviewed) and np.array_equal(again.session.test, test)
    assert again.session.table == table
    for key, value in checkpoint.weights.items():
        assert (again.models.checkpoint.weights[key] == value).all()
    assert again.projects.project.models[0].history  # the training history is kept with the model
    again.close()


def test_a_crash_is_offered_for_recovery_at_the_next_start(window, qtbot, tmp_path, monkeypatch):  # noqa: F811
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMessageBox

    _open(window, qtbot, _nifti(tmp_path, "a.nii.gz"))
    root = window.projects.project.root
    window.projects.save()
    _paint(window, 4, 30, 30)  # journaled only: no snapshot after it
    edited = window.session.labels.labels.copy()
    with open(os.path.join(root, ".lock"), "w") as f:  # as if a killed process had held it
        json.dump({"pid": 2**22 + 12345, "host": os.uname().nodename}, f)
    project = Project.open(root)
    assert project.crashed() and project.pending_edits("s1") == 1
    # a new start: the settings still name the project that was open
    window.projects.project.unlock = lambda: None  # keep the stale lock while the old window goes away
    window.runner.shutdown()
    window.projects.project = None
    QSettings().setValue("open_project", root)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: asked.append(args[2]) or QMessageBox.StandardButton.Yes)
    window.session.open(Volume(np.zeros((2, 4, 4), np.int16), np.eye(4)))  # something else on screen
    assert window.projects.check_crash()
    qtbot.waitUntil(lambda: window.session.volume.shape == edited.shape and not window.runner.busy, timeout=30_000)
    assert asked and "not closed properly" in asked[0]
    assert np.array_equal(window.session.labels.labels, edited)


def test_discarded_recovery_keeps_the_edits_aside(tmp_path):
    from unetgui.core.session import Session
    from unetgui.project.autosave import Autosaver

    path = _nifti(tmp_path, "a.nii.gz")
    project = Project.create(str(tmp_path / "p"))
    volume = nifti.read_image(path)
    project.add_series(path, volume, "nifti")
    session = Session()
    session.open(volume)
    Autosaver(session, project, "s1")
    _paint(type("W", (), {"session": session})(), 2, 20, 20)
    project.discard_journal("s1")
    assert Project.open(project.root).load_labels("s1").labels.max() == 0
    assert [n for n in os.listdir(project.path("labels")) if ".journal.discarded-" in n]


@pytest.mark.skipif(not (REPO / "resources" / "sample" / "model.unetgui").is_file(), reason="sample not built")
def test_self_test_opens_and_segments_the_sample():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-m", "unetgui", "--self-test"], capture_output=True, text=True,
                            timeout=240, env=env, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed" in result.stdout


def test_export_dialog_writes_every_format_without_patient_data(window, qtbot, tmp_path):  # noqa: F811
    from unetgui.formats.dicom.writer import SeriesSpec, write_series
    from unetgui.formats.dicom_seg import read_dicom_seg
    from unetgui.formats.inputs import open_image

    folder = str(tmp_path / "dicom")
    write_series(phantom_hu((6, 48, 56)), folder, SeriesSpec(patient_name="DOE^JANE", patient_id="PID12345",
                                                            series_description="abdomen"))
    volume = open_image(folder).volume
    window.projects.show_volume(volume, folder, "dicom")
    _paint(window, 2, 20, 20)
    window.show_export()
    dialog = window.export_dialog
    assert dialog.dicom_seg.isEnabled() and dialog.dicom_seg.isChecked()
    out = tmp_path / "out"
    dialog.folder.setText(str(out))
    dialog.overlay_png.setChecked(True)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=30_000)
    assert dialog.written, dialog.status.text()
    assert dialog.progress.value() == dialog.progress.maximum()
    names = [p.name for p in out.rglob("*")]
    assert not [n for n in names if "doe" in n.lower() or "jane" in n.lower() or "12345" in n]
    seg = next(p for p in out.glob("*_seg.dcm"))
    labels, _ = read_dicom_seg(str(seg), volume)
    assert np.array_equal(labels.labels, window.session.labels.labels)
    assert len(list(out.glob("*_labels/*.png"))) == 6 and len(list(out.glob("*_overlay/*.png"))) == 6
    dialog.close()


def test_training_spans_every_series_of_the_project(window, qtbot, tmp_path):  # noqa: F811
    a, b = _nifti(tmp_path, "a.nii.gz"), _nifti(tmp_path, "b.nii.gz", (6, 64, 80), seed=1)
    _open(window, qtbot, a)
    _paint(window, 2, 30, 30)
    _paint(window, 6, 30, 30)
    _open(window, qtbot, b)
    _paint(window, 3, 20, 40)
    window.session.set_test(1)  # a test slice of another series stays out of training too
    _open(window, qtbot, a)  # train from series a: series b's reviewed slices join
    window.models.train(None, {"epochs": 1, "learning_rate": 1e-3, "batch_size": 2, "augment": False, "preset": "small",
                               "steps_per_epoch": 5}, False, "cpu")
    qtbot.waitUntil(lambda: not window.models.training, timeout=120_000)
    trainer = window.models.trainer
    assert len(trainer.cases) == 2
    refs = sorted(trainer.train_refs + trainer.val_refs)
    assert refs == [(0, 2), (0, 6), (1, 3)]
    assert window.projects.project.models  # the result was kept in the project


def test_a_project_that_fails_to_open_leaves_the_shown_one_autosaving(window, qtbot, tmp_path):  # noqa: F811
    _open(window, qtbot, _nifti(tmp_path, "a.nii.gz"))
    shown = window.projects.project
    broken = _nifti(tmp_path, "gone.nii.gz")
    other = Project.create(str(tmp_path / "other"))
    other.add_series(broken, nifti.read_image(broken), "nifti")
    os.remove(broken)
    window.projects.open_project(other.root)
    qtbot.waitUntil(lambda: not window.runner.busy and bool(window.io.last_error), timeout=30_000)
    assert "could not be opened" in window.io.last_error and window.projects.project is shown
    _paint(window, 4, 30, 30)
    assert Project.open(shown.root).read_labels("s1").labels[4].any()  # still journaled


def test_clean_close_folds_every_series_journal_and_labels_bring_their_names(window, qtbot, tmp_path, monkeypatch):  # noqa: F811
    from unetgui.core.volume import Label, LabelMap, LabelTable

    monkeypatch.setattr(window.io, "may_replace_document", lambda: True)  # the user agrees to replace the edits
    a, b = _nifti(tmp_path, "a.nii.gz"), _nifti(tmp_path, "b.nii.gz", (6, 48, 48), seed=1)
    _open(window, qtbot, a)
    _paint(window, 3, 20, 20)
    labels_file = str(tmp_path / "labels.nii.gz")
    volume = window.session.volume
    sparse = np.zeros(volume.shape, np.uint8)
    sparse[5, 10:20, 10:20] = 2
    nifti.write_labels(LabelMap(sparse, volume.affine.copy(), LabelTable((Label(2, "Spleen", (10, 200, 10)),))), labels_file)
    window.io.open_labels(labels_file)
    qtbot.waitUntil(lambda: not window.runner.busy and window.session.labels.labels[5].max() == 2, timeout=30_000)
    assert 2 in window.projects.project.table.values  # the project keeps the new label
    _open(window, qtbot, b)
    root = window.projects.project.root
    window.close()
    project = Project.open(root)
    assert project.pending_edits("s1") == 0 and project.pending_edits("s2") == 0
    assert project.read_labels("s1").labels[5].max() == 2 and 2 in project.table.values


def test_a_project_open_in_another_window_is_refused(window, qtbot, tmp_path):  # noqa: F811
    import socket

    project = Project.create(str(tmp_path / "p"))
    with open(project.path(".lock"), "w") as f:
        json.dump({"pid": os.getppid(), "host": socket.gethostname()}, f)
    window.projects.open_project(project.root)
    assert "open in another unetgui" in window.io.last_error and window.projects.project is None
