"""Projects in the window: every opened image joins a project, edits survive switching series, closing,
save-as and a crash; the welcome panel; the sample and the installed bundle's self-test."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import phantom_hu
from gui_helpers import _nifti, _open, _paint
from unetgui.core.volume import Volume
from unetgui.formats import nifti
from unetgui.project.store import Project

REPO = Path(__file__).resolve().parents[2]


def test_welcome_panel_offers_the_three_ways_in(window):  # noqa: F811
    from PySide6.QtWidgets import QPushButton

    assert window.welcome.isVisible() and not window.view.isVisible()
    texts = [b.text() for b in window.welcome.findChildren(QPushButton)]
    assert texts == ["Open DICOM folder...", "Open project...", "Try the sample"]


@pytest.mark.skipif(not (REPO / "resources" / "sample" / "model.unetgui").is_file(), reason="sample not built")
def test_the_sample_opens_with_its_model_and_the_next_step(window, qtbot):  # noqa: F811
    from unetgui.app import RESOURCES

    window.resources = str(RESOURCES)  # as app.run builds the window
    window.welcome.try_sample.emit()  # the welcome panel's "Try the sample"
    qtbot.waitUntil(lambda: window.session.is_open and window.models.checkpoint is not None, timeout=60_000)
    assert window.session.reviewed.sum() == 4
    status = window.training_panel.status.text()
    assert status.startswith("The sample:") and "Segment volume (Ctrl+G)" in status and "Train (Ctrl+T)" in status
    assert window.training_panel.cancel_segment.text() == "Cancel segmenting"
    assert window.windowTitle().startswith("unetgui - Sample study")  # not the copy's timestamped folder


def _open_answering(window, qtbot, path: str, answer: str, default: str | None = None) -> None:
    """Open ``path`` while a project is open: the window asks where it goes; click ``answer`` ("add", "new",
    "cancel") as a user does (``default``: the button Enter would press)."""
    from PySide6.QtCore import Qt

    before = window.session.generation
    window.io.open_path(path)
    qtbot.waitUntil(lambda: window.projects.question is not None and window.projects.question.isVisible(),
                    timeout=30_000)
    assert window.session.generation == before  # nothing changes before the answer
    if default is not None:
        assert window.projects.question.defaultButton() is window.projects.answers[default]
    qtbot.mouseClick(window.projects.answers[answer], Qt.MouseButton.LeftButton)
    assert window.projects.question is None
    if answer != "cancel":
        qtbot.waitUntil(lambda: window.session.generation > before and not window.runner.busy, timeout=30_000)


def test_opened_images_join_a_project_and_keep_their_edits(window, qtbot, tmp_path):  # noqa: F811
    a, b = _nifti(tmp_path, "a.nii.gz"), _nifti(tmp_path, "b.nii.gz", (6, 48, 48), seed=1)
    _open(window, qtbot, a)
    assert window.projects.untitled and "Untitled project" in window.windowTitle()
    _paint(window, 3, 20, 20)
    edited = window.session.labels.labels.copy()
    _open_answering(window, qtbot, b, "add", default="add")  # the user adds it: the edits of a stay in the project
    assert window.session.volume.shape == (6, 48, 48) and window.session.labels.labels.max() == 0
    assert [e.source for e in window.projects.project.series] == [a, b]
    before = window.session.generation
    window.projects.show_series("s1")
    qtbot.waitUntil(lambda: window.session.generation > before and not window.runner.busy, timeout=30_000)
    assert np.array_equal(window.session.labels.labels, edited) and window.session.annotated[3].any()


#: a training of a few steps (the tests below need a model trained on the shown image, not a good one)
TINY_RUN = {"epochs": 1, "batch_size": 2, "augment": False, "preset": "small", "steps_per_epoch": 2}


def _train_tiny(window, qtbot) -> None:
    window.training_panel.resegment.setChecked(False)
    window.models.train(None, TINY_RUN, False, "cpu")
    qtbot.waitUntil(lambda: not window.models.training and not window.runner.busy, timeout=120_000)
    assert window.models.checkpoint is not None, window.training_panel.status.text()


def test_cancel_leaves_the_open_study_and_its_project_as_they_were(window, qtbot, tmp_path):  # noqa: F811
    a, b = _nifti(tmp_path, "a.nii.gz"), _nifti(tmp_path, "b.nii.gz", (6, 48, 48), seed=1)
    _open(window, qtbot, a)
    _paint(window, 3, 20, 20)
    shown, project, edited = window.session.volume, window.projects.project, window.session.labels.labels.copy()
    _open_answering(window, qtbot, b, "cancel")
    assert window.session.volume is shown and np.array_equal(window.session.labels.labels, edited)
    assert window.projects.project is project and [e.source for e in project.series] == [a]
    _paint(window, 5, 30, 30)  # still autosaved into the same project
    assert Project.open(project.root).read_labels("s1").labels[[3, 5]].any(axis=(1, 2)).all()


def test_a_study_added_to_a_project_is_told_its_model_learnt_from_other_series(window, qtbot, tmp_path):  # noqa: F811
    a, b = _nifti(tmp_path, "a.nii.gz"), _nifti(tmp_path, "b.nii.gz", (6, 48, 48), seed=1)
    panel = window.training_panel
    _open(window, qtbot, a)
    assert not panel.from_current.isEnabled() and not panel.from_current.isChecked()  # no model to start from
    _paint(window, 2, 30, 30)
    _paint(window, 6, 30, 30)
    _train_tiny(window, qtbot)
    model = window.models.checkpoint
    assert panel.from_current.isChecked() and not panel.start_note.isVisible()  # trained on the shown image
    _open_answering(window, qtbot, b, "add", default="add")
    assert [e.source for e in window.projects.project.series] == [a, b] and window.models.checkpoint is model
    assert panel.start_note.isVisible()
    assert panel.start_note.text() == "\u26a0 The current model was trained on a.nii.gz, not on this image: Train starts from it."
    panel.from_current.click()  # the user trains a new model instead
    assert not panel.from_current.isChecked() and panel.start_note.text().endswith("not on this image.")
    before = window.session.generation
    window.projects.show_series("s1")  # back on the image the model learnt from: nothing to warn about
    qtbot.waitUntil(lambda: window.session.generation > before and not window.runner.busy, timeout=30_000)
    assert not panel.start_note.isVisible() and not panel.from_current.isChecked()  # the user's choice stays


@pytest.mark.skipif(not (REPO / "resources" / "sample" / "model.unetgui").is_file(), reason="sample not built")
def test_a_study_opened_on_the_sample_starts_a_new_project_with_a_clean_panel(window, qtbot, tmp_path):  # noqa: F811
    from unetgui.app import RESOURCES

    window.resources = str(RESOURCES)
    window.welcome.try_sample.emit()
    qtbot.waitUntil(lambda: window.models.checkpoint is not None and not window.runner.busy, timeout=60_000)
    panel, sample = window.training_panel, window.projects.project
    assert panel.from_current.isChecked() and not panel.start_note.isVisible()  # the sample's model knows the sample
    _paint(window, 1, 30, 30)
    _train_tiny(window, qtbot)
    edited = window.session.labels.labels.copy()
    assert panel.curves.isVisible() and len(panel.train_curve.getData()[0]) and panel.status.text()
    study = _nifti(tmp_path, "study.nii.gz", (6, 48, 48), seed=1)
    _open_answering(window, qtbot, study, "new", default="new")  # on the sample, Enter starts a new project
    project = window.projects.project
    assert project is not sample and window.projects.untitled and [e.source for e in project.series] == [study]
    assert window.models.checkpoint is None and not project.models and "No model yet" in panel.card.text()
    x, _ = panel.train_curve.getData()
    assert not panel.curves.isVisible() and (x is None or not len(x))
    assert panel.status.text() == "" and not panel.summary.isVisible() and not panel.start_note.isVisible()
    assert not panel.from_current.isChecked() and not panel.from_current.isEnabled()
    kept = Project.open(sample.root)  # the sample's project never took the study, and kept every edit
    assert [e.id for e in kept.series] == ["s1"] and np.array_equal(kept.read_labels("s1").labels, edited)
    assert kept.lock_owner().state == "none"


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
    assert project.lock_owner().state == "crashed" and project.pending_edits("s1") == 1
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
def test_export_dialog_writes_every_format_without_patient_data(window, qtbot, tmp_path, monkeypatch):  # noqa: F811
    from PySide6.QtWidgets import QMessageBox

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
    assert not dialog.options().seg_nrrd  # the Slicer segmentation is asked for with its checkbox
    dialog.seg_nrrd.setChecked(True)
    assert dialog.options().seg_nrrd
    dialog.seg_nrrd.setChecked(False)
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

    # exporting again into the same folder asks first; Cancel writes nothing, Yes replaces the files
    _paint(window, 3, 20, 20)
    before = seg.read_bytes()
    asked, answer = [], [QMessageBox.StandardButton.Cancel]
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: asked.append(args[2]) or answer[0])
    dialog.start()
    qtbot.waitUntil(lambda: dialog.job is None and bool(asked), timeout=30_000)
    assert "already holds 17 file(s)" in asked[-1] and "nothing was written" in dialog.status.text()
    assert seg.read_bytes() == before
    answer[0] = QMessageBox.StandardButton.Yes
    dialog.start()
    qtbot.waitUntil(lambda: dialog.job is None and "Wrote" in dialog.status.text(), timeout=30_000)
    labels, _ = read_dicom_seg(str(seg), volume)
    assert np.array_equal(labels.labels, window.session.labels.labels) and labels.labels[3].any()
    dialog.close()


def test_training_spans_every_series_of_the_project(window, qtbot, tmp_path):  # noqa: F811
    a, b = _nifti(tmp_path, "a.nii.gz"), _nifti(tmp_path, "b.nii.gz", (6, 64, 80), seed=1)
    _open(window, qtbot, a)
    _paint(window, 2, 30, 30)
    _paint(window, 6, 30, 30)
    _open_answering(window, qtbot, b, "add")
    _paint(window, 3, 20, 40)
    window.session.set_test(1)  # a test slice of another series stays out of training too
    _open(window, qtbot, a)  # in the project already: no question; train from series a, series b's slices join
    window.models.train(None, {"epochs": 1, "learning_rate": 1e-3, "batch_size": 2, "augment": False, "preset": "small",
                               "steps_per_epoch": 5}, False, "cpu")
    qtbot.waitUntil(lambda: not window.models.training, timeout=120_000)
    run = window.models.last_run
    assert run.volumes == 2
    refs = sorted(run.training + run.validation)
    assert refs == [(0, 2), (0, 6), (1, 3)]
    assert window.projects.project.models  # the result was kept in the project
    assert window.training_panel.counts.text() == "Training: 3 slices of 2 series; validation: 0 slices of 0 series"
    # the images trained from the project's cache (memory-mapped: tests/tasks/test_sources.py)
    cache = Path(window.projects.project.path("cache"))
    assert len(list((cache / "images").iterdir())) == 2 and len(list(cache.glob("prep-*/*/image.npy"))) == 2
    # a second training reuses both entries
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("image.npy")}
    window.models.train(None, {"epochs": 1, "batch_size": 2, "augment": False, "preset": "small", "steps_per_epoch": 2},
                        False, "cpu")
    qtbot.waitUntil(lambda: not window.models.training, timeout=120_000)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("image.npy")} == before


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
    _open_answering(window, qtbot, b, "add")
    root = window.projects.project.root
    window.close()
    project = Project.open(root)
    assert project.pending_edits("s1") == 0 and project.pending_edits("s2") == 0
    assert project.read_labels("s1").labels[5].max() == 2 and 2 in project.table.values


def test_a_project_open_elsewhere_is_opened_only_when_the_user_says_so(window, qtbot, tmp_path, monkeypatch):  # noqa: F811
    import socket

    from PySide6.QtWidgets import QMessageBox

    project = Project.create(str(tmp_path / "p"))
    asked, answer = [], [QMessageBox.StandardButton.Cancel]
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: asked.append(args[2]) or answer[0])
    with open(project.path(".lock"), "w") as f:
        json.dump({"pid": os.getppid(), "host": socket.gethostname()}, f)
    window.projects.open_project(project.root)
    assert "open in another unetgui window on this computer" in asked[-1] and window.projects.project is None
    with open(project.path(".lock"), "w") as f:
        json.dump({"pid": 4242, "host": "workstation-7"}, f)
    window.projects.open_project(project.root)
    assert "is open on workstation-7" in asked[-1] and window.projects.project is None
    answer[0] = QMessageBox.StandardButton.Open  # that program has stopped: open anyway
    window.projects.open_project(project.root)
    qtbot.waitUntil(lambda: window.projects.project is not None, timeout=10_000)
    assert window.projects.project.root == project.root and window.projects.project.lock_owner().state == "ours"


def test_closing_never_waits_forever_for_a_blocked_worker(window, qtbot, tmp_path, monkeypatch):  # noqa: F811
    """A read that cannot be cancelled (a stalled network drive) must not hang the close: the edits are saved,
    the lock removed, and the process ends after the wait (here 0.3 s; os._exit replaced)."""
    import threading

    monkeypatch.setenv("UNETGUI_DATA", str(tmp_path / "data"))
    _open(window, qtbot, _nifti(tmp_path, "a.nii.gz"))
    _paint(window, 4, 30, 30)
    project = window.projects.project
    release = threading.Event()
    window.runner.start(lambda progress, cancel: release.wait(30), "read from a stalled drive")
    exited = []
    monkeypatch.setattr(window, "CLOSE_WAIT_MS", 300)
    monkeypatch.setattr(window, "_exit_now", lambda: exited.append(window.runner.running_names()))
    window.close()
    assert exited == [["read from a stalled drive"]]
    assert project.lock_owner().state == "none" and project.pending_edits("s1") == 0  # saved cleanly
    assert Project.open(project.root).read_labels("s1").labels[4].any()
    release.set()
    window.runner.shutdown()


def test_an_error_nobody_caught_is_logged_and_shown_in_one_line(window, qtbot, tmp_path, monkeypatch):  # noqa: F811
    from unetgui.app import install_last_resort

    monkeypatch.setenv("UNETGUI_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    shown = []
    monkeypatch.setattr(window.io, "warn", lambda title, lines: shown.append((title, list(lines))))
    install_last_resort(window)
    try:
        {}["missing"]
    except KeyError as exc:
        sys.excepthook(KeyError, exc, exc.__traceback__)
        sys.excepthook(KeyError, exc, exc.__traceback__)  # the same error again: no second box
    ((title, (line,)),) = shown
    assert "unexpected error" in title and "a bug in unetgui): KeyError: 'missing'" in line
    log = line.split("(details: ")[1].rstrip(")")
    assert os.path.dirname(log) == str(tmp_path / "data" / "logs") and "KeyError: 'missing'" in open(log).read()


def test_untitled_projects_unused_for_a_month_are_retired_at_start(window, qtbot, tmp_path, monkeypatch):  # noqa: F811
    """What `unetgui` does after opening its window (app.run calls retire_old): the old untitled project's
    annotation is exported, the project removed, and the status bar says where the annotation went."""
    import time

    from unetgui.project import housekeeping

    monkeypatch.setenv("UNETGUI_DATA", str(tmp_path / "data"))
    _open(window, qtbot, _nifti(tmp_path, "a.nii.gz"))
    _paint(window, 4, 30, 30)
    old = window.projects.project.root
    window.projects.close_project()
    past = time.time() - (housekeeping.KEEP_DAYS + 1) * 86400
    for folder, _, files in os.walk(old):
        for name in files + [""]:
            os.utime(os.path.join(folder, name), (past, past))
    window.projects.retire_old()
    qtbot.waitUntil(lambda: window.projects.retired is not None, timeout=30_000)
    (keep,), problems = window.projects.retired
    assert not problems and not os.path.exists(old) and os.path.isfile(os.path.join(keep, "s1_labels.nii.gz"))
    assert "untitled project(s) unused for 30 days were removed" in window.statusBar().currentMessage()
