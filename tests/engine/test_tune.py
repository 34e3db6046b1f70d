"""`unetgui tune` (issue 15): a tiny search writes a study, a trial table, a best JSON that `train --config`
takes, and a model; it resumes in the same storage; two processes share one SQLite study; a failing trial is
recorded and the search goes on; the pruner stops a trial that reports worse than the others."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import optuna
import pytest

from lits_synth import write_lits
from unetgui import cli
from unetgui.tasks import search as search_task
from unetgui.core.errors import UnetguiError
from unetgui.engine import tuning

SMALL = {"size": 48, "slices": (8, 10)}
FAST = ["--trial-minutes", "0.04", "--device", "cpu", "--threads", "1", "--params", "learning_rate", "depth"]


@pytest.fixture(scope="module")
def lits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lits")
    write_lits(folder, 4, **SMALL)
    return folder


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_parser_offers_the_engines_search_space():
    assert set(search_task.PARAMS) == set(tuning.SPACE) and set(search_task.DEFAULT_PARAMS) <= set(tuning.SPACE)


def test_a_tiny_search_writes_its_results_and_resumes(lits, tmp_path, capsys):
    out = tmp_path / "best.unetgui"
    argv = ["tune", "--dataset", str(lits), "--output", str(out), "--trials", "3", "--test-fraction", "0", *FAST]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "study 'unetgui' in sqlite:///" in printed and "0 trial(s) so far" in printed
    rows = _rows(tmp_path / "best.trials.csv")
    assert [r["trial"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} <= {"complete", "pruned"}
    best = json.loads((tmp_path / "best.best.json").read_text())
    assert set(best["overrides"]) == {"learning_rate", "depth"} and 0 <= best["dice"] <= 1
    from unetgui.engine import checkpoint

    model = checkpoint.load(str(out))
    assert model.config.depth == best["overrides"]["depth"]
    # started again: the same study goes on
    assert cli.main(argv[:6] + ["1", *argv[7:]]) == 0
    assert "3 trial(s) so far" in capsys.readouterr().out
    assert [r["trial"] for r in _rows(tmp_path / "best.trials.csv")] == ["0", "1", "2", "3"]
    # the best configuration trains as it is
    trained = tmp_path / "again.unetgui"
    assert cli.main(["train", "--dataset", str(lits), "--output", str(trained), "--config", str(tmp_path / "best.best.json"),
                     "--epochs", "1", "--steps-per-epoch", "2", "--device", "cpu", "--test-fraction", "0"]) == 0
    assert checkpoint.load(str(trained)).config.depth == best["overrides"]["depth"]
    (tmp_path / "bad.json").write_text('{"overrides": {"dept": 3}}')
    assert cli.main(["train", "--dataset", str(lits), "--output", str(trained), "--config", str(tmp_path / "bad.json"),
                     "--epochs", "1"]) == 1
    assert "unknown settings ['dept']" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(lits, tmp_path):
    out = tmp_path / "shared.unetgui"
    cmd = [sys.executable, "-m", "unetgui", "tune", "--dataset", str(lits), "--output", str(out), "--trials", "2",
           "--test-fraction", "0", *FAST]
    # the cache is filled first, so that the two processes do not both write it
    assert cli.main(["tune", "--dataset", str(lits), "--output", str(out), "--trials", "1", "--test-fraction", "0", *FAST]) == 0
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-2000:] for r in results]
    study = tuning.open_study(f"sqlite:///{tmp_path / 'shared.optuna.db'}", "unetgui")
    numbers = [t.number for t in study.trials]
    assert len(numbers) == 5 and len(set(numbers)) == 5


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path):
    study = tuning.open_study(f"sqlite:///{tmp_path / 's.db'}", "fail")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 1:
            trial.set_user_attr("reason", "out of memory even for a batch of one patch")
            raise UnetguiError("out of memory even for a batch of one patch")
        return x

    tuning.run(study, objective, 3, None)
    rows = tuning.results(study)
    assert [r.state for r in rows] == ["complete", "failed", "complete"]
    assert rows[1].reason == "out of memory even for a batch of one patch"


def test_the_pruner_stops_a_trial_worse_than_the_others(tmp_path):
    study = tuning.open_study(f"sqlite:///{tmp_path / 'p.db'}", "prune")

    def objective(trial: optuna.Trial) -> float:
        good = trial.number < 2
        for epoch in range(1, 5):
            trial.report(0.9 if good else 0.1, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 0.9 if good else 0.1

    tuning.run(study, objective, 3, None)
    assert [r.state for r in tuning.results(study)] == ["complete", "complete", "pruned"]


def test_the_loss_weighting_and_the_augmentation_strength_are_settings_the_search_can_set():
    import numpy as np
    import torch
    import torch.nn.functional as F

    from unetgui.engine.augment import AugmentConfig
    from unetgui.engine.loss import dice_ce_loss
    from unetgui.engine.planner import fingerprint, plan_training

    base = AugmentConfig()
    assert base.scaled(1.0) == base
    still = base.scaled(0.0)
    assert still.rotation_degrees == 0 and still.scale == (1, 1) and still.gamma == (1, 1) and still.noise_std == 0
    assert base.scaled(0.5).brightness == (0.875, 1.125)
    logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(1))
    ce = F.cross_entropy(logits, labels)
    assert torch.isclose(dice_ce_loss(logits, labels, dice_weight=0.0), ce)
    one, two = dice_ce_loss(logits, labels), dice_ce_loss(logits, labels, dice_weight=2.0)
    assert torch.isclose(two - ce, 2 * (one - ce))
    labels_np = np.zeros((10, 32, 32), np.uint8)
    labels_np[:, 10:20, 10:20] = 1
    plan = plan_training(fingerprint([np.zeros(labels_np.shape, np.int16)], [labels_np]), "cpu", 1.0,
                         {"dice_weight": 2.0, "augment_strength": 0.5, "kernel": 5})
    assert (plan.train.dice_weight, plan.train.augment_strength, plan.model.kernel) == (2.0, 0.5, 5)
    assert "dice weight" in plan.summary() and "augment strength" in plan.summary()


def test_the_tune_dialog_runs_a_tiny_search_end_to_end(qtbot, tmp_path, monkeypatch):
    """Model > Tune... as a user runs it: a search on the reviewed slices (4: too few to hold some out, so the
    trials are cross-validated and the best configuration is trained on all 4 at the end), a live table and
    scatter, "Use best" makes that model current and the best trial's learning rate the panel's."""
    import numpy as np

    from gui_helpers import _nifti, _open, _paint

    monkeypatch.setenv("UNETGUI_DATA", str(tmp_path / "data"))
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    from unetgui.app import create_app
    from unetgui.ui.main_window import MainWindow

    create_app([])
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    _open(window, qtbot, _nifti(tmp_path, "a.nii.gz"))
    for z in range(4):
        _paint(window, z, 30, 30)
        window.session.set_reviewed(z)  # R: the painted slices are complete (a search measures trials on them)
    epochs = []
    window.models.tune_epoch.connect(lambda n, dice: epochs.append(n))
    window.show_tune()
    dialog = window.tune_dialog
    assert [n for n, b in dialog.boxes.items() if b.isChecked()] == ["depth", "base", "batch_size", "learning_rate"]
    for name, box in dialog.boxes.items():
        box.setChecked(name == "learning_rate")
    dialog.trial_minutes.setValue(0.05)
    dialog.minutes.setValue(0.5)
    dialog.start_button.click()
    assert window.models.tuning and dialog.start_button.text() == "Stop"
    qtbot.waitUntil(lambda: not window.models.tuning, timeout=300_000)
    assert dialog.start_button.text() == "Start" and dialog.table.rowCount() == len(dialog.trials) >= 1
    if dialog.trials[0].minutes < 0.2:  # a second trial fits the 0.5 min budget (on a loaded machine it may not)
        assert dialog.table.rowCount() >= 2
    assert "Search finished" in dialog.status.text()
    assert dialog.use_button.isEnabled()
    dialog.use_button.click()
    qtbot.waitUntil(lambda: window.models.checkpoint is not None, timeout=30_000)
    assert epochs[-1] == -1 and window.models.checkpoint.info["training"]["train_slices"] == 4  # the refit
    best = max((t for t in dialog.trials if t.state == "complete"), key=lambda t: t.value)
    assert np.isclose(window.training_panel.learning_rate.value(), round(best.params["learning_rate"], 5), atol=1e-5)
    assert window.training_panel.overrides()["learning_rate"] is not None
    dialog.close()
    window.close()


def test_stopping_a_search_ends_the_running_trial_and_keeps_the_study(lits, tmp_path):
    from unetgui.core.progress import CancelToken
    from unetgui.tasks.sources import DatasetSource

    data = DatasetSource(str(lits), 0, 0.0).load()
    cancel = CancelToken()
    study = tuning.open_study(f"sqlite:///{tmp_path / 'stop.db'}", "stop")
    objective = tuning.objective_for(data.volumes, data.table, "cpu", 0.5, ("learning_rate",), {"threads": 1}, None,
                                     cancel, on_epoch=lambda n, e: cancel.set(),
                                     build={"val_cases": list(data.val_cases), "cache_root": data.cache_root})
    tuning.run(study, objective, 5, None, cancel)
    (trial,) = tuning.results(study)  # the search stopped after the running trial
    assert trial.state == "pruned" and trial.reason == "stopped by the user"
    assert len(study.trials[0].intermediate_values) == 1  # at the end of the epoch in which the stop came


def test_cross_validation_folds_validate_every_annotated_slice_once():
    import numpy as np

    from unetgui.engine.data import Case, slice_folds

    cases = [Case("a", np.zeros((9, 4, 4), np.float32), np.zeros((9, 4, 4), np.uint8), (1, 2, 5, 7)),
             Case("b", np.zeros((3, 4, 4), np.float32), np.zeros((3, 4, 4), np.uint8), (0,))]
    folds = slice_folds(cases, 3)
    assert len(folds) == 3
    assert sorted(r for _, val in folds for r in val) == [(0, 1), (0, 2), (0, 5), (0, 7), (1, 0)]
    for train, val in folds:
        assert val and train and not set(train) & set(val) and len(train) + len(val) == 5
    assert [val for _, val in folds][0] == [(0, 1), (0, 7)]  # every third slice: spread along the volume
    assert len(slice_folds(cases[:1], 9)) == 4  # never more folds than slices
    with pytest.raises(UnetguiError, match="at least 2"):
        slice_folds([Case("c", np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4), np.uint8), (1,))], 3)


def test_a_search_on_few_annotated_slices_cross_validates_and_refits_the_best(tmp_path, capsys):
    """One volume with 5 annotated slices (fewer than the 10 a validation split needs), as a user gives it to
    `unetgui tune`: each trial is 3 folds over the slices, the best configuration is trained on all of them."""
    from lits_synth import _save, synth_case
    from unetgui.engine import checkpoint

    hu, labels, affine = synth_case(3, 48, 5)
    _save(hu, affine, tmp_path / "ct.nii.gz")
    _save(labels, affine, tmp_path / "liver.nii.gz")
    out = tmp_path / "few.unetgui"
    assert cli.main(["tune", "--images", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "liver.nii.gz"),
                     "--output", str(out), "--trials", "2", "--trial-minutes", "0.03", "--device", "cpu", "--threads", "1",
                     "--params", "learning_rate"]) == 0
    printed = capsys.readouterr().out
    assert "cross-validated over the annotated slices" in printed
    assert "the best configuration trained on every annotated slice" in printed
    study = tuning.open_study(f"sqlite:///{tmp_path / 'few.optuna.db'}", "unetgui")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and all(t.user_attrs["folds"] == 3 and 0 <= t.value <= 1 for t in done)
    assert study.user_attrs["refit_of"] == study.best_trial.number and not tuning.needs_refit(study)
    model = checkpoint.load(str(out))
    training = model.info["training"]
    assert training["train_slices"] == 5 and training["val_slices"] == 0  # the refit saw every slice
    assert len((tmp_path / "few.trials.csv").read_text().splitlines()) == 3


def test_a_search_on_strokes_alone_is_refused_before_its_first_trial(tmp_path, capsys):
    """Strokes train but cannot measure a trial: `tune` says so at once instead of failing every trial."""
    import numpy as np
    from lits_synth import _save, synth_case

    hu, labels, affine = synth_case(3, 48, 5)
    strokes = np.full(labels.shape, 255, np.uint8)
    strokes[1:4, 20:24, 20:30] = labels[1:4, 20:24, 20:30]  # a few voxels per slice: partial slices only
    _save(hu, affine, tmp_path / "ct.nii.gz")
    _save(strokes, affine, tmp_path / "strokes.nii.gz")
    assert cli.main(["tune", "--images", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "strokes.nii.gz"),
                     "--output", str(tmp_path / "s.unetgui"), "--trials", "2", "--trial-minutes", "0.03",
                     "--device", "cpu", "--threads", "1", "--params", "learning_rate"]) == 1
    assert "strokes alone train, but cannot measure a trial" in capsys.readouterr().err
    study = tuning.open_study(f"sqlite:///{tmp_path / 's.optuna.db'}", "unetgui")
    assert not study.trials
