"""Segment and train in the app: settings, Start/Stop, live loss and Dice curves, the model card."""

from __future__ import annotations

import csv
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QLabel, QProgressBar,
    QHBoxLayout, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from unetgui.core.errors import UnetguiError
from unetgui.core.session import Session
from unetgui.ui.model_controller import ModelController

METRIC_COLUMNS = ["Set", "Slices", "Label", "Dice", "IoU", "HD95 (mm)", "Volume pred (mL)", "Volume truth (mL)"]
_PLOT_INTERVAL_S = 0.25  # redraw the batch curve at most 4 times a second (plots are expensive to repaint)


class TrainingPanel(QWidget):
    def __init__(self, session: Session, models: ModelController) -> None:
        super().__init__()
        self.session, self.models = session, models
        self.minutes = QDoubleSpinBox(minimum=0.1, maximum=600, value=3.0, suffix=" min", decimals=1)
        self.epochs = QSpinBox(minimum=1, maximum=100000, value=200)
        self.learning_rate = QDoubleSpinBox(minimum=1e-5, maximum=1.0, value=2e-3, decimals=5, singleStep=5e-4)
        self.batch = QSpinBox(minimum=1, maximum=64, value=4)
        self.preset = QComboBox()
        self.preset.addItems(["auto", "cpu", "gpu", "small"])
        self.preset.setToolTip("auto: gpu preset on a GPU, cpu preset otherwise; small: a quick first model")
        self.augment = QCheckBox("Augmentation")
        self.augment.setChecked(True)
        self.from_current = QCheckBox("Start from the current model")
        self.from_current.setChecked(True)
        self.resegment = QCheckBox("Re-segment unreviewed slices when done")
        self.resegment.setChecked(True)
        self.counts = QLabel()
        settings = QGroupBox("Training")
        form = QFormLayout(settings)
        form.addRow("Time budget", self.minutes)
        form.addRow("At most", self.epochs)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Batch size", self.batch)
        form.addRow("Model size", self.preset)
        form.addRow(self.augment)
        form.addRow(self.from_current)
        form.addRow(self.resegment)
        form.addRow(self.counts)
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self._on_train_clicked)
        self.segment_slice = QPushButton("Segment slice")
        self.segment_volume = QPushButton("Segment volume")
        self.cancel_segment = QPushButton("Cancel")
        self.segment_slice.clicked.connect(lambda: self._segment([self.session.current_slice]))
        self.segment_volume.clicked.connect(lambda: self._segment(None))
        self.cancel_segment.clicked.connect(models.cancel_segmentation)
        self.range_from, self.range_to = QSpinBox(minimum=1), QSpinBox(minimum=1)
        self.segment_range = QPushButton("Segment slices")
        self.segment_range.clicked.connect(self._on_segment_range_clicked)
        range_row = QHBoxLayout()
        range_row.addWidget(self.segment_range)
        range_row.addWidget(self.range_from)
        range_row.addWidget(QLabel("to"))
        range_row.addWidget(self.range_to)
        buttons = QGridLayout()
        buttons.addWidget(self.train_button, 0, 0, 1, 3)
        buttons.addWidget(self.segment_slice, 1, 0)
        buttons.addWidget(self.segment_volume, 1, 1)
        buttons.addWidget(self.cancel_segment, 1, 2)
        buttons.addLayout(range_row, 2, 0, 1, 3)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.loss_plot = pg.PlotWidget(title="Loss")
        self.dice_plot = pg.PlotWidget(title="Validation Dice")
        self.loss_plot.setLogMode(y=True)  # the first validation losses would flatten everything after them
        for plot in (self.loss_plot, self.dice_plot):
            plot.setMinimumHeight(110)
            plot.addLegend(offset=(-5, 5))
            plot.setLabel("bottom", "epoch")
        self.dice_plot.setYRange(0, 1)
        self.train_curve = self.loss_plot.plot(pen=pg.mkPen((120, 170, 255), width=1), name="training (smoothed)")
        self.val_curve = self.loss_plot.plot(pen=pg.mkPen((255, 170, 60), width=2), symbol="o", symbolSize=5, name="validation")
        self.best_lines = [pg.InfiniteLine(angle=90, pen=pg.mkPen((90, 220, 90), style=pg.QtCore.Qt.PenStyle.DashLine)) for _ in range(2)]
        self.loss_plot.addItem(self.best_lines[0])
        self.dice_plot.addItem(self.best_lines[1])
        self.dice_curves: dict[int, pg.PlotDataItem] = {}
        self.card = QLabel(models.card())
        self.card.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(settings)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.loss_plot, 1)
        layout.addWidget(self.dice_plot, 1)
        model_box = QGroupBox("Current model")
        QVBoxLayout(model_box).addWidget(self.card)
        layout.addWidget(model_box)
        layout.addWidget(self._evaluation_box())
        self._reset_curves()
        models.training_event.connect(self._on_training_event)
        models.training_done.connect(self._on_training_done)
        models.segment_progress.connect(self._on_segment_progress)
        models.segment_done.connect(self._on_segment_done)
        models.failed.connect(self._on_failed)
        models.model_changed.connect(lambda: self.card.setText(models.card()))
        models.evaluated.connect(self._show_evaluation)
        session.listeners.reviewed_changed.append(self._show_counts)
        session.listeners.volume_changed.append(self._show_counts)
        self._show_counts()

    # -- evaluation ------------------------------------------------------------------------------
    def _evaluation_box(self) -> QGroupBox:
        box = QGroupBox("Evaluation (validation and test slices)")
        self.evaluate_button = QPushButton("Evaluate")
        self.export_button = QPushButton("Export CSV...")
        self.export_button.setEnabled(False)
        self.evaluate_button.clicked.connect(self._on_evaluate_clicked)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.metrics = QTableWidget(0, len(METRIC_COLUMNS))
        self.metrics.setHorizontalHeaderLabels(METRIC_COLUMNS)
        self.metrics.verticalHeader().setVisible(False)
        self.metrics.setMinimumHeight(60)
        layout = QGridLayout(box)
        layout.addWidget(self.evaluate_button, 0, 0)
        layout.addWidget(self.export_button, 0, 1)
        layout.addWidget(self.metrics, 1, 0, 1, 2)
        self._metric_rows: list[list[str]] = []
        return box

    def _on_evaluate_clicked(self) -> None:
        try:
            self.models.evaluate()
        except UnetguiError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText("Evaluating...")

    def _show_evaluation(self, rows) -> None:
        names = {lab.value: lab.name for lab in self.session.table}
        self._metric_rows = []
        for name, count, m in rows:
            hd = f"{m.hd95_mm:.2f}" if np.isfinite(m.hd95_mm) else "n/a"
            self._metric_rows.append([name, str(count), names.get(m.label, str(m.label)), f"{m.dice:.4f}", f"{m.iou:.4f}",
                                      hd, f"{m.volume_pred_ml:.2f}", f"{m.volume_truth_ml:.2f}"])
        self.metrics.setRowCount(len(self._metric_rows))
        for r, row in enumerate(self._metric_rows):
            for c, text in enumerate(row):
                self.metrics.setItem(r, c, QTableWidgetItem(text))
        self.metrics.resizeColumnsToContents()
        self.export_button.setEnabled(bool(self._metric_rows))
        self.status.setText("Evaluated the current model (HD95 n/a: one of prediction and truth is empty).")

    def export_csv(self, path: str) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(METRIC_COLUMNS)
            writer.writerows(self._metric_rows)

    def _on_export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    # -- counts ----------------------------------------------------------------------------------
    def _on_segment_range_clicked(self) -> None:
        first, last = sorted((self.range_from.value(), self.range_to.value()))
        self._segment(list(range(first - 1, last)))  # the spin boxes count slices from 1, like the slider

    def _show_counts(self) -> None:
        if self.session.is_open:
            n_slices = self.session.volume.shape[0]
            for spin in (self.range_from, self.range_to):
                spin.setMaximum(n_slices)
        n = int(self.session.reviewed.sum()) if self.session.is_open else 0
        val = 0 if n < 2 else max(1, round(n / 6))
        self.counts.setText(f"Reviewed slices: {n} (training {n - val}, validation {val})")

    # -- actions ---------------------------------------------------------------------------------
    def _on_train_clicked(self) -> None:
        if self.models.training:
            self.models.stop_training()
            self.status.setText("Stopping after this batch...")
            return
        try:
            self._reset_curves()
            self.models.train(self.minutes.value(), self.epochs.value(), self.learning_rate.value(),
                              self.batch.value(), self.augment.isChecked(), self.from_current.isChecked(),
                              preset_name=self.preset.currentText())
        except UnetguiError as exc:
            self.status.setText(str(exc))
            return
        self.train_button.setText("Stop")
        self.status.setText("Training started (the first epoch includes loading the engine)...")

    def _segment(self, slices) -> None:
        try:
            self.models.segment(slices)
        except UnetguiError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText("Segmenting...")

    # -- curves ----------------------------------------------------------------------------------
    def _reset_curves(self) -> None:
        self._batch_x: list[float] = []
        self._batch_y: list[float] = []
        self._smoothed = None
        self._epochs: list[int] = []
        self._val_loss: list[float] = []
        self._dice: dict[int, list[float]] = {}
        self._last_plot = 0.0
        self.train_curve.setData([], [])
        self.val_curve.setData([], [])
        for curve in self.dice_curves.values():
            self.dice_plot.removeItem(curve)
        self.dice_curves.clear()
        for line in self.best_lines:
            line.setVisible(False)

    def _on_training_event(self, event) -> None:
        from unetgui.engine.training import BatchStats

        if isinstance(event, BatchStats):
            self._smoothed = event.loss if self._smoothed is None else 0.9 * self._smoothed + 0.1 * event.loss
            self._batch_x.append(event.epoch - 1 + event.step / event.steps)
            self._batch_y.append(self._smoothed)
            self.progress.setRange(0, 1000)
            budget = (event.elapsed + event.eta) or 1.0
            self.progress.setValue(int(1000 * event.elapsed / budget))
            self.status.setText(f"Epoch {event.epoch}, batch {event.step}/{event.steps}, loss {event.loss:.3f}; "
                                f"ETA {event.eta:.0f} s")
            if time.monotonic() - self._last_plot > _PLOT_INTERVAL_S:
                self.train_curve.setData(self._batch_x, self._batch_y)
                self._last_plot = time.monotonic()
            return
        self.train_curve.setData(self._batch_x, self._batch_y)
        if event.val_loss is not None:
            self._epochs.append(event.epoch)
            self._val_loss.append(event.val_loss)
            self.val_curve.setData(self._epochs, self._val_loss)
            for value, dice in event.val_dice.items():
                self._dice.setdefault(value, []).append(dice)
                if value not in self.dice_curves:
                    label = self.session.table.get(value)
                    color = label.color if label else (255, 255, 255)
                    self.dice_curves[value] = self.dice_plot.plot(pen=pg.mkPen(color, width=2), symbol="o", symbolSize=5,
                                                                  symbolBrush=color, name=label.name if label else str(value))
                self.dice_curves[value].setData(self._epochs[-len(self._dice[value]):], self._dice[value])
        for line in self.best_lines:
            line.setPos(event.best_epoch)
            line.setVisible(True)
        if event.stop_reason:
            self.status.setText(f"Stopped by {event.stop_reason}; best epoch {event.best_epoch}")

    def _on_training_done(self, message: str) -> None:
        self.train_button.setText("Train")
        self.progress.setValue(self.progress.maximum())
        self.status.setText(message)
        if (self.resegment.isChecked() and self.models.checkpoint is not None and self.session.is_open
                and self.models.checkpoint is self.models.last_trained):  # not when the project changed meanwhile
            unreviewed = [int(z) for z in np.flatnonzero(~self.session.reviewed)]
            if unreviewed and not self.models.busy_segmenting:
                self._segment(unreviewed)

    def _on_segment_progress(self, done: int, total: int, eta: float) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.status.setText(f"Segmenting: {done}/{total} slices, ETA {eta:.0f} s")

    def _on_segment_done(self, message: str) -> None:
        self.status.setText(message)

    def _on_failed(self, message: str) -> None:
        self.train_button.setText("Stop" if self.models.training else "Train")
        self.status.setText(f"Failed: {message}\nThe labels were not changed by the failed job.")
