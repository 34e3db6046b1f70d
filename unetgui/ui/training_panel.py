"""Segment and train in the app: the actions (Segment volume, Train/Stop, Cancel) always at the top; below,
scrolled, the start point, the settings under "Advanced" (collapsed until an image is open), the live loss and
Dice curves (from the first training run on), the model card and the evaluation."""

from __future__ import annotations

import sys
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, QSize, Qt
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QFrame, QGridLayout, QGroupBox, QLabel,
    QProgressBar, QHBoxLayout, QPushButton, QScrollArea, QSpinBox, QTableWidget, QTableWidgetItem, QToolButton,
    QVBoxLayout, QWidget,
)

from unetgui.core import atomic, csvcell
from unetgui.core.errors import UnetguiError
from unetgui.core.session import Session
from unetgui.engine.planner import FEW_SLICES, TrainingPlan, panel_defaults  # torch-free
from unetgui.engine.events import BatchStats
from unetgui.tasks.evaluate import COLUMNS as EVALUATION_COLUMNS
from unetgui.ui.model_controller import ModelController

#: the Device box: what ModelController.set_device takes, as the user reads it (an Apple GPU only on a Mac)
DEVICE_NAMES = {"auto": "Automatic", "cpu": "CPU",
                **({"mps": "Apple GPU (MPS)"} if sys.platform == "darwin" else {"cuda": "NVIDIA GPU (CUDA)"})}
METRIC_COLUMNS = ["Set", "Slices", "Label", "Dice", "IoU", "HD95 (mm)", "Volume pred (mL)", "Volume truth (mL)"]
PANEL_WIDTH = 340  # the panel's preferred width (px): the left dock of a 1280 x 800 screen
_PLAN_FIRST = "Settings left at auto are planned from the annotated slices when training starts."
_PLOT_INTERVAL_S = 0.25  # redraw the batch curve at most 4 times a second (plots are expensive to repaint)


class TrainingPanel(QWidget):
    def __init__(self, session: Session, models: ModelController) -> None:
        super().__init__()
        self.session, self.models = session, models
        # Qt applies constructor keywords in an order we do not control (a value set before decimals= is
        # rounded to 2 decimals and clamped): set decimals and range first, then the value (_show_defaults)
        self.minutes = _spin(QDoubleSpinBox(), 0.1, 600, decimals=1, suffix=" min")
        self.epochs = _spin(QSpinBox(), 0, 100000, special="no limit")
        self.learning_rate = _spin(QDoubleSpinBox(), 1e-5, 1.0, decimals=5, step=5e-4)
        self.batch = _spin(QSpinBox(), 0, 256, special="auto")
        self.preset = QComboBox()
        self.preset.addItems(["auto", "cpu", "gpu", "small"])
        self.preset.setToolTip("auto: planned from the annotated data and the device; small: a quick first model")
        self.planes = QComboBox()
        self.planes.addItems(["auto", "axial", "coronal", "sagittal"])
        self.planes.setToolTip("The planes the model learns from and segments; auto: axial, unless most of the "
                               "reviewed annotation lies in coronal or sagittal planes (a model started from keeps its own)")
        self.device = QComboBox()
        for name, text in DEVICE_NAMES.items():
            self.device.addItem(text, name)
        if self.device.findData(models.device) < 0:  # e.g. settings from another kind of machine
            models.set_device("auto")
        self.device.setCurrentIndex(self.device.findData(models.device))
        self.device.setToolTip("Where segmenting and training run (remembered). Automatic: an NVIDIA or Apple GPU "
                               "when torch can use one, else the CPU. CPU: leaves a GPU to other work.")
        self.device.currentIndexChanged.connect(lambda _i: models.set_device(self.device.currentData()))
        self.augment = QCheckBox("Augmentation")
        self.augment.setChecked(True)
        self.from_current = QCheckBox("Start from the current model")
        self.from_current.setToolTip("Fine-tune the current model (a shorter time budget, a lower learning rate) "
                                     "instead of training a new one")
        self._start_from_model = True  # the user's choice; shown ticked only while there is a model
        # said when the current model was trained on other data than the open image (ModelController.other_data)
        self.start_note = QLabel()
        self.start_note.setWordWrap(True)
        self.start_note.setVisible(False)
        self._edited: set[str] = set()  # settings the user changed (the planner's value otherwise)
        self._tuned: dict = {}  # a search's best settings the panel has no box for (apply_tuned)
        for name, box in (("minutes", self.minutes), ("learning_rate", self.learning_rate)):
            box.valueChanged.connect(lambda _v, name=name: self._edited.add(name))
        self.from_current.toggled.connect(self._on_from_current_toggled)
        self.defaults_button = QPushButton("Planner's defaults")
        self.defaults_button.setToolTip("Forget the settings you changed: the planner chooses them from the data")
        self.defaults_button.clicked.connect(self._on_defaults_clicked)
        self.plan = QLabel(_PLAN_FIRST)
        self.plan.setWordWrap(True)
        self.resegment = QCheckBox("Segment the rest when done")
        self.resegment.setToolTip("When training ends, segment the slices not marked reviewed with the new model")
        self.resegment.setChecked(True)
        self.counts = QLabel()
        self.counts.setWordWrap(True)
        # what an edit teaches: the project's choice (Session.review_on_edit; also in the Edit menu), beside what
        # training would learn from
        self.review_on_edit = QCheckBox("Edits mark the plane reviewed")
        self.review_on_edit.setToolTip("On: any edit makes its whole plane ground truth for training, the model's "
                                       "uncorrected prediction included. Off (default, docs/corrective.md): only the "
                                       "voxels you paint train; R marks a whole plane")
        self.review_on_edit.toggled.connect(session.set_review_on_edit)
        self.progress = QProgressBar()
        self.progress.setVisible(False)  # shown by a job: an idle, empty bar reads as a text field
        self.status = QLabel("")
        self.status.setWordWrap(True)
        # how the last training ended: stays until the next training or another image (the status line below the
        # buttons is the segmentation's next)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("trainingSummary")
        self.summary.setStyleSheet("#trainingSummary { border: 1px solid palette(mid); padding: 4px; }")
        self.summary.setVisible(False)
        self.card = QLabel(models.card())
        self.card.setWordWrap(True)
        model_box = QGroupBox("Current model")
        QVBoxLayout(model_box).addWidget(self.card)
        for label in (self.start_note, self.counts, self.status, self.summary, self.card):
            label.setTextFormat(Qt.TextFormat.PlainText)  # label and series names come from files: never markup
        body = QWidget()  # below the actions, scrolled: the actions stay in sight however long this grows
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 0, 0)
        # how training ended and the model it left come first (the card under the summary, not below the fold)
        for widget in (self.summary, model_box, self.counts, self.review_on_edit, self.from_current, self.start_note,
                       self._advanced_section(), self._curves(), self._evaluation_box()):
            column.addWidget(widget)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self._actions())
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)
        self._reset_curves()
        models.training_started.connect(lambda: self.curves.setVisible(True))  # curves exist from the first run on
        models.training_event.connect(self._on_training_event)
        models.training_done.connect(self._on_training_done)
        models.segment_progress.connect(self._on_segment_progress)
        models.segment_done.connect(self._on_segment_done)
        models.failed.connect(self._on_failed)
        models.model_changed.connect(self._on_model_changed)
        models.start_point_changed.connect(self._show_start_point)
        models.evaluated.connect(self._show_evaluation)
        session.listeners.reviewed_changed.append(self._show_counts)
        session.listeners.volume_changed.append(self._show_counts)
        session.listeners.volume_changed.append(self._on_volume_changed)
        session.listeners.volume_changed.append(self._show_advanced)
        session.listeners.closed.append(self._show_advanced)
        session.listeners.closed.append(self._show_counts)
        self._show_counts()
        self._show_start_point()
        self._show_advanced()

    def sizeHint(self) -> QSize:  # noqa: N802
        """Narrow: the left dock of a 1280 x 800 screen leaves the image the rest (the plots would ask for 640 px)."""
        return QSize(PANEL_WIDTH, super().sizeHint().height())

    def _actions(self) -> QGridLayout:
        """Segment volume and Train (Stop while training) first, then a slice, a range and Cancel."""
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Train on the reviewed slices (Ctrl+T); while training: stop after this batch")
        self.train_button.clicked.connect(self._on_train_clicked)
        self.segment_slice = QPushButton("Segment slice")
        self.segment_volume = QPushButton("Segment volume")
        self.segment_volume.setToolTip("Segment every slice not marked reviewed with the current model (Ctrl+G)")
        self.cancel_segment = QPushButton("Cancel segmenting")  # says what it cancels (Train turns into Stop)
        self.segment_slice.clicked.connect(lambda: self._segment([self.session.current_slice]))
        self.segment_volume.clicked.connect(lambda: self._segment(None))
        self.cancel_segment.clicked.connect(self.models.cancel_segmentation)
        self.range_from, self.range_to = QSpinBox(minimum=1), QSpinBox(minimum=1)
        self.segment_range = QPushButton("Segment slices")
        self.segment_range.clicked.connect(self._on_segment_range_clicked)
        range_row = QHBoxLayout()
        range_row.addWidget(self.segment_range, 1)
        range_row.addWidget(self.range_from)
        range_row.addWidget(QLabel("to"))
        range_row.addWidget(self.range_to)
        buttons = QGridLayout()
        buttons.addWidget(self.segment_volume, 0, 0)
        buttons.addWidget(self.train_button, 0, 1)
        buttons.addWidget(self.segment_slice, 1, 0)
        buttons.addWidget(self.cancel_segment, 1, 1)
        buttons.addLayout(range_row, 2, 0, 1, 2)
        return buttons

    def _advanced_section(self) -> QWidget:
        """The training settings under "Advanced": collapsed until an image is open, or as the user left them."""
        settings = QGroupBox("Training")
        form = QFormLayout(settings)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow dock: the box under its name
        form.addRow("Time budget", self.minutes)
        form.addRow("At most", self.epochs)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Batch size", self.batch)
        form.addRow("Model size", self.preset)
        form.addRow("Planes", self.planes)
        form.addRow("Device", self.device)
        form.addRow(self.augment)
        form.addRow(self.resegment)
        form.addRow(self.defaults_button)
        self.advanced = QToolButton()
        self.advanced.setText("Advanced: training settings")
        self.advanced.setCheckable(True)
        self.advanced.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced.setAutoRaise(True)
        self.advanced.clicked.connect(self._on_advanced_clicked)
        self._advanced_choice: bool | None = None  # the user's (None: shown while an image is open)
        self.settings = QWidget()
        inner = QVBoxLayout(self.settings)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(settings)
        inner.addWidget(self.plan)  # outside the form: a wrapped label in a form row is cut to one line
        section = QWidget()
        outer = QVBoxLayout(section)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.advanced)
        outer.addWidget(self.settings)
        return section

    def _curves(self) -> QWidget:
        """The loss and Dice plots, shown from the first training run on (empty plots say nothing)."""
        self.loss_plot = pg.PlotWidget(title="Loss")
        self.dice_plot = pg.PlotWidget(title="Validation Dice")
        self.loss_plot.setLogMode(y=True)  # the first validation losses would flatten everything after them
        # fixed 1-2-5 ticks: the log axis labels every minor tick itself, and they overlap in a plot this small
        self.loss_plot.getAxis("left").setTicks(
            [[(float(np.log10(v)), f"{v:g}") for e in range(-4, 3) for v in (10.0**e, 2 * 10.0**e, 5 * 10.0**e)]])
        for plot in (self.loss_plot, self.dice_plot):
            plot.setMinimumHeight(150)  # below this the axis labels overlap
            plot.setMaximumHeight(230)  # in a scrolled dock a plot would otherwise take its 480 px size hint
            plot.addLegend(offset=(-5, 5))
            plot.setLabel("bottom", "epoch")
        self.dice_plot.setYRange(0, 1)
        self.dice_plot.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)]])
        self.train_curve = self.loss_plot.plot(pen=pg.mkPen((120, 170, 255), width=1), name="training (smoothed)")
        self.val_curve = self.loss_plot.plot(pen=pg.mkPen((255, 170, 60), width=2), symbol="o", symbolSize=5, name="validation")
        self.best_lines = [pg.InfiniteLine(angle=90, pen=pg.mkPen((90, 220, 90), style=pg.QtCore.Qt.PenStyle.DashLine)) for _ in range(2)]
        self.loss_plot.addItem(self.best_lines[0])
        self.dice_plot.addItem(self.best_lines[1])
        self.dice_curves: dict[int, pg.PlotDataItem] = {}
        self.curves = QWidget()
        column = QVBoxLayout(self.curves)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.loss_plot)
        column.addWidget(self.dice_plot)
        self.curves.setVisible(False)
        return self.curves

    # -- what the panel shows when --------------------------------------------------------------------
    def _on_advanced_clicked(self, expanded: bool) -> None:
        self._advanced_choice = expanded
        self._show_advanced()

    def _show_advanced(self) -> None:
        shown = self.session.is_open if self._advanced_choice is None else self._advanced_choice
        with QSignalBlocker(self.advanced):
            self.advanced.setChecked(shown)
        self.advanced.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.settings.setVisible(shown)

    def _on_from_current_toggled(self, on: bool) -> None:
        self._start_from_model = on
        self._show_start_point()

    def _show_start_point(self) -> None:
        """"Start from the current model" ticked only with a model (as the user chose), and a note when that
        model was trained on other data than the open image."""
        has_model = self.models.checkpoint is not None
        self.from_current.setEnabled(has_model)
        with QSignalBlocker(self.from_current):
            self.from_current.setChecked(has_model and self._start_from_model)
        other = self.models.other_data if has_model else ""
        start = ": Train starts from it." if self.from_current.isChecked() else "."
        self.start_note.setText(f"\u26a0 The current model was trained on {other}, not on this image{start}")
        self.start_note.setVisible(bool(other))
        self._show_defaults()

    def _on_model_changed(self) -> None:
        self.card.setText(self.models.card())
        self.evaluation.setVisible(self.models.checkpoint is not None)
        if self.models.checkpoint is None and not self.models.training:  # a new or another project: a clean slate
            self._reset_curves()
            self.curves.setVisible(False)
            self._show_summary([])
            self.status.setText("")
            self.progress.reset()
            self.progress.setVisible(False)
            self.plan.setText(_PLAN_FIRST)
        self._show_start_point()

    def _on_volume_changed(self) -> None:
        self._show_summary([])  # another image: that run is history
        if not (self.models.training or self.models.busy_segmenting):
            self.status.setText("")  # what was said about the last image
            self.progress.reset()
            self.progress.setVisible(False)

    # -- settings --------------------------------------------------------------------------------
    def _fine_tuning(self) -> bool:
        return self.from_current.isChecked() and self.models.checkpoint is not None

    def _show_defaults(self) -> None:
        """The planner's defaults in every setting the user has not changed."""
        defaults = panel_defaults(self._fine_tuning())
        for name, box in (("minutes", self.minutes), ("learning_rate", self.learning_rate)):
            if name not in self._edited:
                with QSignalBlocker(box):
                    box.setValue(defaults[name])

    def _on_defaults_clicked(self) -> None:
        self._edited.clear()
        self._tuned = {}
        self._show_defaults()
        self.batch.setValue(0)
        self.epochs.setValue(0)
        self.preset.setCurrentText("auto")
        self.planes.setCurrentText("auto")
        self.augment.setChecked(True)

    def overrides(self) -> dict:
        """What the user set (and a search's best settings, after "Use best"); the planner chooses the rest."""
        return {**self._tuned,
                "learning_rate": self.learning_rate.value() if "learning_rate" in self._edited else None,
                "batch_size": self.batch.value() or self._tuned.get("batch_size"), "epochs": self.epochs.value() or None,
                "preset": None if self.preset.currentText() == "auto" else self.preset.currentText(),
                "axis": None if self.planes.currentText() == "auto" else self.planes.currentText(),
                "augment": None if self.augment.isChecked() else False}

    def apply_tuned(self, params: dict) -> None:
        """A search's best settings become this panel's: the learning rate and batch size in their boxes, the
        others (depth, width, ...) kept for the next training until "Planner's defaults"."""
        self._tuned = {k: v for k, v in params.items() if k not in ("learning_rate", "batch_size")}
        if "learning_rate" in params:
            self.learning_rate.setValue(float(params["learning_rate"]))  # marks it edited
        if "batch_size" in params:
            self.batch.setValue(int(params["batch_size"]))
            self._tuned["batch_size"] = int(params["batch_size"])

    # -- evaluation ------------------------------------------------------------------------------
    def _evaluation_box(self) -> QGroupBox:
        box = QGroupBox("Evaluation (validation and test slices)")
        self.evaluation = box  # shown with a model: there is nothing to evaluate before
        box.setVisible(False)
        self.evaluate_button = QPushButton("Evaluate")
        self.export_button = QPushButton("Export CSV...")
        self.export_button.setEnabled(False)
        self.evaluate_button.clicked.connect(self._on_evaluate_clicked)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.metrics = QTableWidget(0, len(METRIC_COLUMNS))
        self.metrics.setHorizontalHeaderLabels(METRIC_COLUMNS)
        self.metrics.verticalHeader().setVisible(False)
        self.metrics.setMinimumHeight(60)
        self.metrics.setMaximumHeight(180)
        layout = QGridLayout(box)
        layout.addWidget(self.evaluate_button, 0, 0)
        layout.addWidget(self.export_button, 0, 1)
        layout.addWidget(self.metrics, 1, 0, 1, 2)
        self._metric_rows: list[list[str]] = []
        self._evaluation: list[dict] = []  # the same rows as JSON, for the CSV
        return box

    def _on_evaluate_clicked(self) -> None:
        try:
            self.models.evaluate()
        except UnetguiError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText("Evaluating...")

    def _show_evaluation(self, rows) -> None:  # tasks.evaluate.EvaluationRow
        self._evaluation = [row.to_json() for row in rows]
        self._metric_rows = []
        for row in rows:
            hd = f"{row.hd95_mm:.2f}" if np.isfinite(row.hd95_mm) else "n/a"
            self._metric_rows.append([row.set, str(row.slices), row.name, f"{row.dice:.4f}", f"{row.iou:.4f}",
                                      hd, f"{row.volume_pred_ml:.2f}", f"{row.volume_truth_ml:.2f}"])
        self.metrics.setRowCount(len(self._metric_rows))
        for r, row in enumerate(self._metric_rows):
            for c, text in enumerate(row):
                self.metrics.setItem(r, c, QTableWidgetItem(text))
        self.metrics.resizeColumnsToContents()
        self.export_button.setEnabled(bool(self._metric_rows))
        self.status.setText("Evaluated the current model (HD95 n/a: one of prediction and truth is empty; "
                            "sparse slices: HD95 per slice in 2-D, averaged).")

    def export_csv(self, path: str) -> None:
        """The evaluation as CSV, in the columns every evaluation CSV of unetgui has (tasks/evaluate.py)."""
        atomic.write_bytes(path, csvcell.table_text(EVALUATION_COLUMNS, self._evaluation).encode("utf-8"))

    def _on_export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    # -- counts ----------------------------------------------------------------------------------
    def _on_segment_range_clicked(self) -> None:
        first, last = sorted((self.range_from.value(), self.range_to.value()))
        self._segment(list(range(first - 1, last)))  # the spin boxes count slices from 1, like the slider

    def _show_counts(self) -> None:
        self.counts.setVisible(self.session.is_open)
        with QSignalBlocker(self.review_on_edit):
            self.review_on_edit.setChecked(self.session.review_on_edit)
        if self.session.is_open:
            n_slices = self.session.volume.shape[0]
            for spin in (self.range_from, self.range_to):
                spin.setMaximum(n_slices)
        s = self.session
        n = int((s.reviewed & ~s.test).sum()) if s.is_open else 0
        planes = (int(s.reviewed_coronal.sum()), int(s.reviewed_sagittal.sum())) if s.is_open else (0, 0)
        extra = "".join(f", {k} {name}" for k, name in zip(planes, ("coronal", "sagittal")) if k)
        if any(planes):  # the planner trains in the plane most of the annotation lies in
            text = f"Reviewed slices: {n} axial{extra}"
        elif n < FEW_SLICES:
            text = f"Reviewed slices: {n}, all train (validation from {FEW_SLICES} on)"
        else:
            val = max(1, round(n / 6))
            text = f"Reviewed slices: {n} (training {n - val}, validation {val})"
        counts = s.annotation_counts()
        if counts["stroked"]:  # strokes train, never validate (engine/data.py), and count apart
            text += (f"\nStrokes on {counts['stroked']} more slice{'s' if counts['stroked'] > 1 else ''}: "
                     f"{counts['foreground']:,} label and {counts['background']:,} background voxels (train only)")
        self.counts.setText(text)

    # -- actions ---------------------------------------------------------------------------------
    def _on_train_clicked(self) -> None:
        if self.models.training:
            self.models.stop_training()
            self.status.setText("Stopping after this batch...")
            return
        try:
            self._reset_curves()
            self.models.train(self.minutes.value(), self.overrides(), self.from_current.isChecked())
            self._show_summary([])
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
        if isinstance(event, TrainingPlan):
            self.plan.setText(f"Plan: {event.summary()}")
            if "learning_rate" not in self._edited:  # the planned rate (higher for small structures), still not the user's
                with QSignalBlocker(self.learning_rate):
                    self.learning_rate.setValue(event.train.learning_rate)
            return
        if isinstance(event, BatchStats):
            self._smoothed = event.loss if self._smoothed is None else 0.9 * self._smoothed + 0.1 * event.loss
            self._batch_x.append(event.epoch - 1 + event.step / event.steps)
            self._batch_y.append(self._smoothed)
            self.progress.setRange(0, 1000)
            self.progress.setVisible(True)
            budget = (event.elapsed + event.eta) or 1.0
            self.progress.setValue(int(1000 * event.elapsed / budget))
            self.status.setText(f"Epoch {event.epoch}, batch {event.step}/{event.steps}, loss {event.loss:.3f}; "
                                f"ETA {event.eta:.0f} s")
            if time.monotonic() - self._last_plot > _PLOT_INTERVAL_S:
                self.train_curve.setData(self._batch_x, self._batch_y)
                self._last_plot = time.monotonic()
            return
        self.train_curve.setData(self._batch_x, self._batch_y)
        self.counts.setText(f"Training: {event.train_slices} slices of {event.train_cases} series; validation: "
                            f"{event.val_slices} slices of {event.val_cases} series")
        self.dice_plot.setTitle("Validation Dice" if event.dice_on == "validation"
                                else "Dice on the annotated (training) slices")
        if event.val_loss is not None:
            self._epochs.append(event.epoch)
            if event.dice_on == "validation":  # a loss on the training slices is not a validation loss
                self._val_loss.append(event.val_loss)
                self.val_curve.setData(self._epochs[-len(self._val_loss):], self._val_loss)
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
            kept = f"best epoch {event.best_epoch}" if event.dice_on == "validation" else "final weights kept"
            self.status.setText(f"Stopped by {event.stop_reason}; {kept}")

    def _on_training_done(self, message: str) -> None:
        self.train_button.setText("Train")
        self.progress.setValue(self.progress.maximum())
        self.status.setText(message)
        run = self.models.last_run
        self._show_summary(run.summary() if run is not None else [message])
        if (self.resegment.isChecked() and self.models.checkpoint is not None and self.session.is_open
                and self.models.checkpoint is self.models.last_trained):  # not when the project changed meanwhile
            unreviewed = [int(z) for z in np.flatnonzero(~self.session.reviewed)]
            if unreviewed and not self.models.busy_segmenting:
                self._segment(unreviewed)

    def _show_summary(self, lines: list[str]) -> None:
        self.summary.setText("\n".join(lines))
        self.summary.setVisible(bool(lines))

    def _on_segment_progress(self, done: int, total: int, eta: float) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setVisible(True)
        self.status.setText(f"Segmenting: {done}/{total} slices, ETA {eta:.0f} s")

    def _on_segment_done(self, message: str) -> None:
        self.status.setText(message)

    def _on_failed(self, message: str) -> None:
        self.train_button.setText("Stop" if self.models.training else "Train")
        self.status.setText(f"Failed: {message}\nThe labels were not changed by the failed job.")


def _spin(box, minimum, maximum, decimals: int | None = None, step: float | None = None, suffix: str = "",
          special: str = ""):
    """A spin box configured in a safe order (decimals, then range); the value is set by the caller."""
    if decimals is not None:
        box.setDecimals(decimals)
    box.setRange(minimum, maximum)
    if step is not None:
        box.setSingleStep(step)
    if suffix:
        box.setSuffix(suffix)
    if special:
        box.setSpecialValueText(special)
    return box
