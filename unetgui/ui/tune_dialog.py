"""Model > Tune...: a hyperparameter search (engine/tuning.py, Optuna) on the reviewed slices, on a worker:
budget and parameters, start/stop, a live table of trials and a scatter of their Dice (pruned ones marked),
and "Use best", which makes the best trial's model the current model and its settings the panel's."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QPushButton, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from unetgui.core.errors import UnetguiError
from unetgui.ui.model_controller import ModelController

PARAMS = {"depth": "Depth", "base": "Width", "batch_size": "Batch size", "patch": "Patch size",
          "learning_rate": "Learning rate", "weight_decay": "Weight decay", "context": "2.5-D context",
          "kernel": "Kernel size", "dice_weight": "Dice / CE weight", "augment_strength": "Augmentation strength"}
DEFAULT = ("depth", "base", "batch_size", "learning_rate")


class TuneDialog(QDialog):
    def __init__(self, parent: QWidget, models: ModelController, folder: str, apply_best) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tune hyperparameters")
        self.models, self.folder, self.apply_best = models, folder, apply_best
        self.minutes = QDoubleSpinBox(minimum=0.5, maximum=24 * 60, decimals=1, suffix=" min")
        self.minutes.setValue(30.0)
        self.trial_minutes = QDoubleSpinBox(minimum=0.05, maximum=600, decimals=2, suffix=" min")
        self.trial_minutes.setValue(2.0)
        self.boxes = {name: QCheckBox(text) for name, text in PARAMS.items()}
        grid = QGridLayout()
        for i, (name, box) in enumerate(self.boxes.items()):
            box.setChecked(name in DEFAULT)
            grid.addWidget(box, i // 2, i % 2)
        form = QFormLayout()
        form.addRow("Search budget", self.minutes)
        form.addRow("Each trial", self.trial_minutes)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self._start_or_stop)
        self.use_button = QPushButton("Use best")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use_best)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Trial", "State", "Dice", "Minutes", "Settings"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        for col, width in enumerate((50, 80, 70, 70)):
            self.table.setColumnWidth(col, width)
        self.plot = pg.PlotWidget(title="Validation Dice per trial")
        self.plot.setLabel("bottom", "trial")
        self.plot.setFixedHeight(180)
        self.complete = self.plot.plot(pen=None, symbol="o", symbolSize=8, symbolBrush=(80, 180, 255))
        self.pruned = self.plot.plot(pen=None, symbol="x", symbolSize=8, symbolPen=(220, 120, 60))
        self.status = QLabel("The search trains on the reviewed slices; the study is kept, so a new start continues it.")
        self.status.setWordWrap(True)
        self.trials: list = []
        self.best: dict | None = None
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.use_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(grid)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.plot)
        models.tune_trial.connect(self._on_trial)
        models.tune_epoch.connect(self._on_epoch)
        models.tune_done.connect(self._on_done)

    def _on_epoch(self, number: int, dice: float) -> None:
        if number < 0:  # after a cross-validated search: the best configuration on every reviewed slice
            self.status.setText(f"Training the best configuration on every reviewed slice: Dice {dice:.4f}")
        else:
            self.status.setText(f"Trial {number}: validation Dice {dice:.4f}")

    def selected(self) -> tuple[str, ...]:
        return tuple(name for name, box in self.boxes.items() if box.isChecked())

    def _start_or_stop(self) -> None:
        if self.models.tuning:
            self.models.stop_tuning()
            self.status.setText("Stopping after the running trial's current epoch...")
            return
        if not self.selected():
            self.status.setText("Choose at least one setting to search.")
            return
        try:
            self.models.tune(self.selected(), self.trial_minutes.value(), self.minutes.value(), self.folder)
        except UnetguiError as exc:
            self.status.setText(str(exc))
            return
        self.start_button.setText("Stop")
        self.status.setText("Searching...")

    def _on_trial(self, trial) -> None:
        self.trials.append(trial)
        row = self.table.rowCount()
        self.table.insertRow(row)
        dice = f"{trial.value:.4f}" if trial.value is not None and math.isfinite(trial.value) else "-"
        settings = ", ".join(f"{PARAMS.get(k, k)} {v:.3g}" if isinstance(v, float) else f"{PARAMS.get(k, k)} {v}"
                             for k, v in trial.params.items())
        for col, text in enumerate((str(trial.number), trial.state, dice, f"{trial.minutes:.1f}",
                                    settings + (f" ({trial.reason})" if trial.reason else ""))):
            self.table.setItem(row, col, QTableWidgetItem(text))
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        cut = [t for t in self.trials if t.state == "pruned"]
        self.complete.setData([t.number for t in done], [t.value for t in done])
        # a pruned trial is drawn at its last reported Dice where it has one, else at 0
        self.pruned.setData([t.number for t in cut], [t.value if t.value is not None else 0.0 for t in cut])

    def _on_done(self, result) -> None:  # tasks.search.SearchResult
        self.start_button.setText("Start")
        self.best = result if result.model else None
        self.use_button.setEnabled(self.best is not None)
        best = max((t for t in self.trials if t.state == "complete" and t.value is not None), key=lambda t: t.value,
                   default=None)
        self.status.setText(f"Search {result.how}: {len(self.trials)} trial(s)"
                            + (f"; best: trial {best.number}, Dice {best.value:.4f}" if best else ""))

    def _use_best(self) -> None:
        if self.best is None:
            return
        self.models.open_model(self.best.model)
        params = self.best.params
        if params is None:  # stopped: the best trial so far
            complete = [t for t in self.trials if t.state == "complete" and t.value is not None]
            params = max(complete, key=lambda t: t.value).params if complete else {}
        self.apply_best(params)
        self.status.setText("The best trial's model is the current model; its settings are the training panel's.")

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.models.tuning:
            self.models.stop_tuning()
        super().closeEvent(event)
