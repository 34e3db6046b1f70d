"""End to end on the real window: open a DICOM phantom through the dialog, paint 3 slices, train 2 epochs
with live curves, segment the volume, and check reviewed slices are untouched and no thread leaks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch  # noqa: F401  (import torch before any worker does: the first import takes seconds)

from conftest import phantom_hu
from gui_helpers import _drag, _line

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture
def short_epochs(monkeypatch):
    """Epochs of 20 steps (the planner sizes epochs to ~10 s; these tests need only a few steps)."""
    from dataclasses import replace

    from unetgui.engine import planner

    monkeypatch.setattr(planner.TrainingPlan, "with_step_seconds",
                        lambda plan, seconds: replace(plan, train=replace(plan.train, steps_per_epoch=20)))


def _open_series(window, qtbot, hu: np.ndarray, tmp_path) -> None:  # noqa: F811
    """Write ``hu`` as a DICOM series and open it through the app's DICOM dialog, as a user does."""
    from unetgui.formats.dicom.writer import SeriesSpec, write_series

    write_series(hu, str(tmp_path / "ct"), SeriesSpec(slice_spacing=2.0))
    dialog = window.io.open_dicom_folder(str(tmp_path / "ct"))
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=30_000)
    dialog.accept()
    qtbot.waitUntil(lambda: window.session.is_open, timeout=30_000)


def test_paint_train_segment_end_to_end(window, qtbot, tmp_path, short_epochs):  # noqa: F811
    from PySide6.QtCore import QThread

    hu = phantom_hu((12, 64, 64))
    yy, xx = np.mgrid[0:64, 0:64]
    liver = np.hypot(yy - 28 - np.arange(12)[:, None, None] * 0.5, xx - 26) < 10  # a tube through every slice
    hu = (hu.astype(np.int32) - np.where(hu > 65, 50, 0) + np.where(liver, 50, 0)).astype(np.int16)  # blob -> tube
    _open_series(window, qtbot, hu, tmp_path)

    # paint the liver on 3 slices with the threshold brush (HU 65..200), a big brush over its centre
    window.tools.tool = "brush"
    window.tools.brush_size = 60
    window.tools.set_threshold(True, 65, 200)
    painted = [3, 6, 9]
    for z in painted:
        window.session.set_slice(z)
        _drag(qtbot, window.view, _line(window.view, 28 + z * 0.5, 22, 30, n=6))
        window.actions.mark_reviewed.trigger()  # R: the slice is complete, all of it truth
    assert window.session.reviewed[painted].all() and window.session.reviewed.sum() == 3
    truth = liver
    for z in painted:
        assert ((window.session.labels.labels[z] == 1) == truth[z]).mean() > 0.97
    reviewed_before = window.session.labels.labels[painted].copy()

    panel = window.training_panel
    panel.preset.setCurrentText("small")
    panel.epochs.setValue(2)
    panel.learning_rate.setValue(0.01)
    panel.resegment.setChecked(False)
    panel.train_button.click()
    assert window.models.training
    qtbot.waitUntil(lambda: not window.models.training, timeout=120_000)
    assert window.models.checkpoint is not None, panel.status.text()
    steps = window.models.run_started.plan.train.steps_per_epoch
    assert len(panel._batch_x) == 2 * steps and len(panel.train_curve.getData()[0]) == 2 * steps
    # 3 annotated slices: all train, the Dice shown is on them (no validation loss), the final weights are kept
    assert len(panel._epochs) == 2 and panel.val_curve.getData()[0] in (None, []) or not len(panel.val_curve.getData()[0])
    assert 1 in panel.dice_curves and len(panel.dice_curves[1].getData()[0]) == 2
    assert "annotated" in panel.dice_plot.getPlotItem().titleLabel.text
    assert "final weights kept" in panel.status.text() or "current model" in panel.status.text()
    assert panel.plan.text().startswith("Plan: U-Net") and "set by you: learning rate, epochs, preset" in panel.plan.text()

    window.actions.segment_volume.trigger()
    qtbot.waitUntil(lambda: not window.models.busy_segmenting and "Segmented" in panel.status.text(), timeout=120_000)
    labels = window.session.labels.labels
    others = [z for z in range(12) if z not in painted]
    assert all((labels[z] == 1).any() for z in others)  # every other slice got a non-empty prediction
    hit = (labels[others] == 1) & truth[others]
    assert 2 * hit.sum() / ((labels[others] == 1).sum() + truth[others].sum()) > 0.5  # and roughly the right one
    assert np.array_equal(labels[painted], reviewed_before)  # the user's slices are untouched
    assert "CPU" in window.device.text() and "slices/s" in window.device.text()  # where it ran, how fast
    assert window.models.last_rate > 0 and "slices/s)" in panel.status.text()
    # how the training ended stays on screen after the segmentation's status replaced the training's
    assert panel.summary.isVisible() and panel.summary.text().startswith("Training ended with its last epoch")
    assert "Kept: the final weights (epoch 2)" in panel.summary.text() and "training slices" in panel.summary.text()

    # evaluation on the validation slice and on a slice the user marks as test
    window.session.set_slice(5)
    window.session.labels.labels[5] = liver[5].astype(np.uint8)
    window.actions.mark_test.trigger()
    assert window.session.test[5] and window.session.reviewed[5] and window.session.training_labels()[5].min() == 255
    panel.evaluate_button.click()
    qtbot.waitUntil(lambda: panel.metrics.rowCount() == 1, timeout=60_000)
    sets = {panel.metrics.item(r, 0).text(): float(panel.metrics.item(r, 3).text()) for r in range(1)}
    assert set(sets) == {"test"} and sets["test"] > 0.5  # no validation slice: every reviewed slice trained
    panel.export_csv(str(tmp_path / "metrics.csv"))
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("case,set,slices,label,name,dice") and len(lines) == 2 and ",test,1,1," in lines[1]
    window.close()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10_000)
    assert not [t for t in window.findChildren(QThread) if t.isRunning()]


def _trained_window(window, qtbot, epochs=2):  # noqa: F811
    from unetgui.core.volume import Volume

    hu = phantom_hu((10, 48, 48))
    window.session.open(Volume(hu, np.eye(4), "CT"))
    truth = (hu > 65).astype(np.uint8)
    for z in (2, 5, 7):
        window.session.labels.labels[z] = truth[z]
        window.session.set_reviewed(z)
    panel = window.training_panel
    panel.preset.setCurrentText("small")
    panel.epochs.setValue(epochs)
    panel.learning_rate.setValue(0.01)
    panel.resegment.setChecked(False)
    return panel, truth


def test_slices_reviewed_while_training_join_the_training(window, qtbot, short_epochs):  # noqa: F811
    panel, truth = _trained_window(window, qtbot, epochs=3)
    panel.train_button.click()
    qtbot.waitUntil(lambda: len(panel._batch_x) > 0, timeout=60_000)  # training runs
    window.session.labels.labels[4] = truth[4]
    window.session.set_reviewed(4)  # the user keeps correcting meanwhile
    qtbot.waitUntil(lambda: not window.models.training, timeout=120_000)
    refs = {z for _, z in window.models.last_run.training + window.models.last_run.validation}
    assert refs == {2, 4, 5, 7}


def test_segment_a_range_and_a_failed_segmentation_changes_nothing(window, qtbot, monkeypatch, short_epochs):  # noqa: F811
    panel, _ = _trained_window(window, qtbot)
    panel.train_button.click()
    assert window.models.training, panel.status.text()
    qtbot.waitUntil(lambda: not window.models.training, timeout=120_000)
    assert window.models.checkpoint is not None, panel.status.text()
    panel.range_from.setValue(4)
    panel.range_to.setValue(3)  # either order
    before = window.session.labels.labels.copy()
    panel.segment_range.click()
    assert window.models.busy_segmenting, panel.status.text()
    qtbot.waitUntil(lambda: not window.models.busy_segmenting, timeout=60_000)
    assert "Segmented 2 slice(s)" in panel.status.text(), panel.status.text()
    changed = {int(z) for z in np.flatnonzero((window.session.labels.labels != before).any(axis=(1, 2)))}
    assert changed == {3}  # slices 3-4 as the user counts them; 0-based 2 is reviewed and kept

    from unetgui.engine import inference

    real_run = inference.Predictor.run

    def broken(self, voxels, slices=None, cancel=None):
        yield from list(real_run(self, voxels, slices, cancel))[:2]  # two batches arrive, then it fails
        raise RuntimeError("simulated crash in the middle of a segmentation")

    monkeypatch.setattr(inference.Predictor, "run", broken)
    before = window.session.labels.labels.copy()
    panel.segment_volume.click()
    assert window.models.busy_segmenting, panel.status.text()
    qtbot.waitUntil(lambda: not window.models.busy_segmenting, timeout=60_000)
    assert "Failed" in panel.status.text(), panel.status.text()
    assert "simulated crash" in panel.status.text()
    assert window.models.last_rate is None  # no throughput claimed for a run that did not finish
    assert np.array_equal(window.session.labels.labels, before)  # the batches already shown were taken back


def test_the_panel_opens_with_the_planners_defaults(window, qtbot):  # noqa: F811
    from unetgui.engine import planner

    panel = window.training_panel
    labels = np.full((8, 64, 64), 255, np.uint8)
    labels[[2, 5]] = 0
    labels[[2, 5], 20:40, 20:40] = 1
    plan = planner.plan_training(planner.fingerprint([np.zeros(labels.shape, np.int16)], [labels]), "cpu",
                                 planner.DEFAULT_MINUTES_APP)
    assert panel.learning_rate.value() == pytest.approx(plan.train.learning_rate)  # 0.002, not clamped to 1e-5
    assert panel.minutes.value() == pytest.approx(plan.train.minutes)
    assert panel.batch.text() == "auto" and panel.epochs.text() == "no limit" and panel.preset.currentText() == "auto"
    assert all(v is None for v in panel.overrides().values())  # nothing overridden: the planner decides
    window.models.set_model(_tiny_checkpoint())  # with a model, "start from the current model" fine-tunes
    assert panel.learning_rate.value() == pytest.approx(planner.FINE_TUNE_RATE)
    panel.learning_rate.setValue(0.004)  # the user's value stays, and is passed on as theirs
    panel.from_current.setChecked(False)
    assert panel.learning_rate.value() == pytest.approx(0.004) and panel.overrides()["learning_rate"] == 0.004
    panel.defaults_button.click()
    assert panel.learning_rate.value() == pytest.approx(plan.train.learning_rate) and panel.overrides()["learning_rate"] is None
    # a small structure's plan (0.1 % of a slice) trains at a higher rate: the box shows the planned rate, and
    # it stays the planner's, not the user's
    small = np.full((8, 320, 320), 255, np.uint8)
    small[[2, 5]] = 0
    small[[2, 5], 150:160, 150:160] = 1
    small_plan = planner.plan_training(planner.fingerprint([np.zeros(small.shape, np.int16)], [small]), "cpu", 3.0)
    panel._on_training_event(small_plan)
    assert panel.learning_rate.value() == pytest.approx(planner.LEARNING_RATE_SMALL)
    assert panel.overrides()["learning_rate"] is None
    assert "learning rate 0.004" in panel.plan.text()


def test_the_device_box_opens_automatic_routes_the_work_and_is_remembered(window, qtbot, monkeypatch):  # noqa: F811
    """As the panel opens the device is Automatic; choosing the CPU sends segmentation there and is kept for the
    next start; a GPU this machine lacks gives a readable failure and leaves the labels as they were."""
    from PySide6.QtCore import QSettings

    from unetgui.core.volume import Volume
    from unetgui.engine import inference
    from unetgui.ui.model_controller import ModelController

    panel, models = window.training_panel, window.models
    assert panel.device.currentData() == "auto" and models.device == "auto"
    window.session.open(Volume(phantom_hu((8, 48, 48)), np.eye(4), "CT"))
    models.set_model(_tiny_checkpoint())
    asked, real_init = [], inference.Predictor.__init__

    def init(self, checkpoint, device="auto", *args, **kwargs):
        asked.append(device)
        real_init(self, checkpoint, device, *args, **kwargs)

    monkeypatch.setattr(inference.Predictor, "__init__", init)
    try:
        panel.device.setCurrentIndex(panel.device.findData("cpu"))
        assert models.device == "cpu" and QSettings().value("device") == "cpu"
        assert ModelController(window.session, window.runner).device == "cpu"  # the next start keeps it
        panel.segment_volume.click()
        qtbot.waitUntil(lambda: not models.busy_segmenting, timeout=60_000)
        assert asked[-1] == "cpu" and "Segmented 8 slice(s) on CPU" in panel.status.text()
        if not torch.cuda.is_available():
            before = window.session.labels.labels.copy()
            panel.device.setCurrentIndex(panel.device.findData("cuda"))
            panel.segment_volume.click()
            qtbot.waitUntil(lambda: not models.busy_segmenting, timeout=60_000)
            assert "no CUDA GPU that torch can use: choose the CPU or automatic" in panel.status.text()
            assert np.array_equal(window.session.labels.labels, before)
    finally:
        panel.device.setCurrentIndex(panel.device.findData("auto"))
    assert QSettings().value("device") == "auto"

def _tiny_checkpoint():
    from engine_fixtures import tiny_checkpoint

    return tiny_checkpoint()


def test_train_with_the_panel_as_it_opens_segments_the_phantom(window, qtbot, monkeypatch):  # noqa: F811
    """A new user's first run: the sample's CT phantom, its 4 annotated liver slices, Train pressed with every
    setting as the panel opens (the planner's learning rate, patch, batch, model); the unannotated slices are
    segmented when training ends. The amount of training is fixed in steps (8 epochs of 10), not left to the
    3-minute budget, so that the Dice asserted does not depend on how busy the machine is (the budgeted
    quality is measured by benchmarks/fewshot.py)."""
    from dataclasses import replace

    from unetgui.engine import planner

    monkeypatch.setattr(planner.TrainingPlan, "with_step_seconds", lambda plan, seconds: replace(
        plan, train=replace(plan.train, steps_per_epoch=10, epochs=8)))
    import importlib.util
    from pathlib import Path

    from unetgui.core.volume import Volume

    path = Path(__file__).resolve().parents[2] / "resources" / "build_sample.py"
    spec = importlib.util.spec_from_file_location("build_sample", path)
    build_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_sample)
    hu, liver = build_sample.phantom()
    window.session.open(Volume(hu, np.eye(4), "CT"))
    annotated = build_sample.annotated_slices(liver)
    for z in annotated:
        window.session.labels.labels[z] = liver[z]
        window.session.set_reviewed(z)
    panel = window.training_panel
    panel.train_button.click()
    assert window.models.training, panel.status.text()
    qtbot.waitUntil(lambda: not window.models.training, timeout=400_000)
    assert window.models.checkpoint is not None, panel.status.text()
    qtbot.waitUntil(lambda: "Segmented" in panel.status.text(), timeout=120_000)
    others = [z for z in range(hu.shape[0]) if z not in annotated]
    predicted = window.session.labels.labels[others] == 1
    truth = liver[others].astype(bool)
    score = 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())
    assert score >= 0.8, (score, panel.plan.text())
    card = panel.card.text()
    assert "Dice on the annotated (training) slices" in card and "planned from the data" in card


def test_segment_volume_applies_the_models_largest_component_rule(window, qtbot, monkeypatch):  # noqa: F811
    from unetgui.core.volume import Volume
    from unetgui.engine import inference

    hu = phantom_hu((8, 48, 48))
    window.session.open(Volume(hu, np.eye(4), "CT"))
    window.session.labels.labels[3] = 0
    window.session.labels.labels[3, 10:30, 10:30] = 1  # the user's slice joins the structure above and below
    window.session.set_reviewed(3)  # a reviewed slice is never overwritten, also not by the post-processing
    checkpoint = _tiny_checkpoint()
    checkpoint.info["postprocessing"] = {"largest_component": [1]}
    window.models.set_model(checkpoint)

    def fake_run(self, voxels, slices=None, cancel=None):
        for start in range(0, 8, 4):
            batch = list(range(start, start + 4))
            labels = np.zeros((4, 48, 48), np.uint8)
            labels[:, 10:30, 10:30] = 1  # one structure through every slice
            if 5 in batch:
                labels[batch.index(5), 40:44, 40:44] = 1  # and a speck on slice 5
            yield inference.SliceBatch(tuple(batch), labels, np.zeros((4, 2, 48, 48), np.uint8), start + 4, 8, 0.0,
                                       np.zeros((4, 48, 48), np.uint8))

    monkeypatch.setattr(inference.Predictor, "run", fake_run)
    window.training_panel.segment_volume.click()
    qtbot.waitUntil(lambda: not window.models.busy_segmenting, timeout=60_000)
    labels = window.session.labels.labels
    assert labels[5, 40:44, 40:44].max() == 0 and labels[5, 10:30, 10:30].all()  # the speck is gone
    assert labels[3].sum() == 400  # the reviewed slice kept the user's labels
    window.session.undo()  # the segmentation and its post-processing are one undo step
    assert labels[[0, 1, 2, 4, 5, 6, 7]].max() == 0 and labels[3].sum() == 400
    # re-segmenting only the unreviewed slices (what Train does when it ends) covers the volume too
    window.models.segment([0, 1, 2, 4, 5, 6, 7])
    qtbot.waitUntil(lambda: not window.models.busy_segmenting, timeout=60_000)
    assert labels[5, 40:44, 40:44].max() == 0 and labels[[0, 5, 7], 10:30, 10:30].all() and labels[3].sum() == 400


def test_segment_volume_keeps_only_what_reaches_the_users_structure(window, qtbot, monkeypatch):  # noqa: F811
    """The annotated-object rule on thick slices: a lesion-like false positive at the end of the volume, larger
    than the lesion, goes; the lesion, linked across 6 mm slices although its cross-sections do not overlap, stays."""
    from unetgui.core.volume import Volume
    from unetgui.engine import inference

    hu = phantom_hu((10, 48, 48))
    window.session.open(Volume(hu, np.diag([0.9, 0.9, 6.0, 1.0]), "MR"))
    window.session.labels.labels[4] = 0
    window.session.labels.labels[4, 20:26, 20:26] = 1  # the user's lesion on a reviewed slice
    window.session.set_reviewed(4)
    checkpoint = _tiny_checkpoint()
    checkpoint.info["postprocessing"] = {"largest_component": [], "annotated_object": [1], "linked": True}
    window.models.set_model(checkpoint)

    def fake_run(self, voxels, slices=None, cancel=None):
        labels = np.zeros((10, 48, 48), np.uint8)
        for z, shift in ((3, -8), (5, 8), (6, 16)):  # the lesion moves 8 px a slice: no overlap between slices
            labels[z, 20 + shift:26 + shift, 20:26] = 1
        labels[0:2, 2:14, 30:46] = 1  # larger than the lesion, at the end of the volume
        order = list(range(10)) if slices is None else list(slices)
        yield inference.SliceBatch(tuple(order), labels[order], np.zeros((len(order), 2, 48, 48), np.uint8),
                                   len(order), len(order), 0.0, np.zeros((len(order), 48, 48), np.uint8))

    monkeypatch.setattr(inference.Predictor, "run", fake_run)
    window.training_panel.segment_volume.click()
    qtbot.waitUntil(lambda: not window.models.busy_segmenting, timeout=60_000)
    labels = window.session.labels.labels
    assert labels[0:2].max() == 0  # the false positive is gone
    assert labels[3, 12:18, 20:26].all() and labels[5, 28:34, 20:26].all() and labels[6, 36:42, 20:26].all()
    assert labels[4].sum() == 36  # the reviewed slice as the user drew it


def test_slices_reviewed_during_training_join_the_run(window, qtbot, tmp_path, short_epochs):  # noqa: F811
    _open_series(window, qtbot, phantom_hu((12, 64, 64)), tmp_path)
    window.tools.tool = "brush"
    window.tools.brush_size = 30
    for z in (3, 6):
        window.session.set_slice(z)
        _drag(qtbot, window.view, _line(window.view, 30, 20, 30, n=4))
    panel = window.training_panel
    panel.preset.setCurrentText("small")
    panel.epochs.setValue(4)
    panel.train_button.click()
    qtbot.waitUntil(lambda: len(panel._epochs) > 0, timeout=60_000)  # the first epoch is over
    for z in (9, 10):  # two reviews in a row while it trains: the newer set (both slices) must arrive
        window.session.set_slice(z)
        _drag(qtbot, window.view, _line(window.view, 30, 20, 30, n=4))
    qtbot.waitUntil(lambda: not window.models.training, timeout=120_000)
    run = window.models.last_run
    assert run.epochs == 4, "the run ended before the reviews could join"
    assert {z for _, z in run.training + run.validation} == {3, 6, 9, 10}


def test_the_apps_evaluate_and_the_command_line_agree_on_a_sparse_test_set(window, qtbot, tmp_path):  # noqa: F811
    """The same model on the same slices of the same DICOM series: the app's Evaluate (test slices marked
    with Shift+R) and ``unetgui evaluate --model --image --truth`` (a label file annotating just those slices)
    give the same rows, and the app's HD95 on that sparse set is the per-slice 2-D HD95 of the slices."""
    import json

    import nibabel as nib

    from engine_fixtures import tiny_checkpoint
    from unetgui import cli
    from unetgui.engine import metrics
    from unetgui.tasks import models
    from unetgui.tasks.segment import SegmentRequest, collect

    hu = phantom_hu((12, 64, 64))
    _open_series(window, qtbot, hu, tmp_path)
    s = window.session
    truth = (s.volume.voxels > 65).astype(np.uint8)
    test = [3, 6, 9]  # not neighbours: a sparse set
    for z in test:
        s.labels.labels[z] = truth[z]
        s.set_test(z)
    model = tiny_checkpoint()
    models.save(model, str(tmp_path / "m.unetgui"))
    window.models.set_model(model)
    shown = []
    window.models.evaluated.connect(shown.append)
    window.training_panel.evaluate_button.click()
    qtbot.waitUntil(lambda: bool(shown), timeout=60_000)
    (app_row,) = shown[0]
    assert app_row.set == "test" and app_row.slices == 3
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[test] = truth[test]
    nib.save(nib.Nifti1Image(sparse.transpose(2, 1, 0), s.volume.affine), str(tmp_path / "test.nii.gz"))
    assert cli.main(["evaluate", "--model", str(tmp_path / "m.unetgui"), "--image", str(tmp_path / "ct"), "--truth",
                     str(tmp_path / "test.nii.gz"), "--json", str(tmp_path / "e.json"), "--device", "cpu"]) == 0
    (cli_row,) = json.loads((tmp_path / "e.json").read_text())["metrics"]
    for key in ("dice", "iou", "hd95_mm", "volume_pred_ml", "volume_truth_ml"):
        assert cli_row[key] == pytest.approx(app_row.to_json()[key]), key
    assert cli_row["slices"] == 3 and cli_row["label"] == app_row.label
    # the app's HD95 is the mean of the slices' 2-D HD95 (in-plane spacing), not a 3-D distance across them
    predicted = collect(SegmentRequest("cpu", tuple(test)), model, s.volume).labels
    per_slice = [metrics.hd95(predicted[z] == 1, truth[z] == 1, s.volume.spacing[1:]) for z in test]
    assert all(math.isfinite(d) for d in per_slice)
    assert app_row.hd95_mm == pytest.approx(float(np.mean(per_slice)))


def test_the_model_card_is_one_shortcut_away_and_shows_file_text_as_plain_text(window, qtbot):  # noqa: F811
    from PySide6.QtCore import Qt

    window.actions.model_card.trigger()  # Ctrl+I, before any model
    box = window.model_card_box
    assert box.isVisible() and box.textFormat() == Qt.TextFormat.PlainText and box.text().startswith("No model yet")
    box.close()
    panel = window.training_panel  # the card sits right under the training summary, above the settings
    column = panel.summary.parentWidget().layout()
    order = [column.itemAt(k).widget() for k in range(column.count()) if column.itemAt(k).widget() is not None]
    assert order.index(panel.card.parentWidget()) == order.index(panel.summary) + 1


def test_panel_text_from_files_is_plain_text(window):  # noqa: F811
    from PySide6.QtCore import Qt

    panel = window.training_panel
    for label in (panel.start_note, panel.counts, panel.status, panel.summary, panel.card):
        assert label.textFormat() == Qt.TextFormat.PlainText  # a label named "<img src=...>" shows as typed


def test_the_progress_bar_shows_only_while_a_job_runs(window, qtbot):  # noqa: F811
    from unetgui.core.volume import Volume

    panel = window.training_panel
    assert not panel.progress.isVisible()  # idle: an empty bar would read as a text field
    window.models.segment_progress.emit(1, 4, 0.0)  # what a running segmentation reports
    assert panel.progress.isVisible() and panel.progress.value() == 1
    window.session.open(Volume(phantom_hu((4, 32, 32)), np.eye(4), "CT"))  # another image, no job running
    assert not panel.progress.isVisible()
