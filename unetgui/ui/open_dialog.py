"""File > Open DICOM folder: scan on a worker (progress, cancel), pick a series in a table."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel, QProgressBar, QTableWidget, QTableWidgetItem,
    QVBoxLayout,
)

from unetgui.formats.dicom import ScanResult, Series, scan
from unetgui.workers.jobs import JobRunner

COLUMNS = (("patient", "Patient"), ("date", "Date"), ("modality", "Modality"), ("description", "Description"),
           ("slices", "Slices"), ("size", "Rows x cols"), ("spacing_mm", "Spacing (mm)"))


class SeriesPickerDialog(QDialog):
    """Scans ``folder`` when shown; ``chosen`` is the selected series after ``accept``."""

    def __init__(self, folder: str, runner: JobRunner, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Open DICOM - {folder}")
        self.resize(900, 420)
        self.folder, self.runner = folder, runner
        self.result_: ScanResult | None = None
        self.chosen: Series | None = None
        self.status = QLabel("Scanning...")
        self.progress = QProgressBar()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([title for _, title in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.doubleClicked.connect(lambda _: self.accept())
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.table)
        layout.addWidget(self.buttons)
        self.job = runner.run("scan", scan, folder,
                              on_progress=self._on_progress, on_finished=self._on_scanned,
                              on_failed=self._on_failed, on_cancelled=lambda: self.status.setText("Cancelled."))

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"Scanning failed: {message}")
        self.progress.hide()

    def _on_scanned(self, result: ScanResult) -> None:
        self.result_ = result
        self.progress.hide()
        skipped = f"; {result.skipped_summary()}" if result.skipped else ""
        self.status.setText(f"{len(result.series)} series in {result.files_seen} file(s){skipped}. "
                            "Double-click a series to open it.")
        self.table.setRowCount(len(result.series))
        for row, series in enumerate(result.series):
            summary = series.summary()
            for col, (key, _) in enumerate(COLUMNS):
                item = QTableWidgetItem(summary[key])
                if key == "slices":
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if series.notes:
                    item.setToolTip("\n".join(series.notes))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        if result.series:
            self.table.selectRow(0)
            self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(True)

    def accept(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if self.result_ is None or not rows:
            return
        self.chosen = self.result_.series[min(rows)]
        super().accept()

    def reject(self) -> None:
        self.job.cancel()
        super().reject()
