"""File > Open DICOM folder: scan on a worker (progress, cancel), pick a series in a table whose columns show
their whole text; a folder without DICOM images says so and offers to open a NIfTI or NRRD image instead."""

from __future__ import annotations

import html
import os
import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel, QProgressBar, QPushButton, QTableWidget,
    QTableWidgetItem, QVBoxLayout,
)

from unetgui.formats.dicom import ScanResult, Series, scan
from unetgui.workers.jobs import JobRunner

COLUMNS = (("patient", "Patient"), ("date", "Date"), ("modality", "Modality"), ("description", "Description"),
           ("slices", "Slices"), ("size", "Rows x cols"), ("spacing_mm", "Spacing (mm)"))
MIN_WIDTH = 640  # px: the dialog never starts narrower, whatever the series list holds
# a DICOM DA ("20221208", the pre-1993 "2022.12.08") or DT ("20221208081134.28", an offset may follow)
_DATE = re.compile(r"(\d{4})[.-]?(\d{2})[.-]?(\d{2})(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d+)?)?(?:[+-]\d{4})?")


def readable_date(value: str) -> str:
    """A DICOM date (DA) or date-time (DT) as ``2022-12-08`` or ``2022-12-08 08:11``; anything else unchanged."""
    match = _DATE.fullmatch(value.strip())
    if not match:
        return value
    year, month, day, hour, minute = match.group(1, 2, 3, 4, 5)
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return value
    date = f"{year}-{month}-{day}"
    if hour is None or int(hour) > 23 or int(minute or 0) > 59:
        return date
    return f"{date} {hour}:{minute or '00'}"


def no_series_message(folder: str, result: ScanResult) -> str:
    """What the dialog says when ``result`` holds no image series: where it looked, how many files, what next."""
    where = "folder" if os.path.isdir(folder) else "file"
    if result.files_seen == 0:
        found = f"The {where} holds no files."
    else:
        skipped = f" ({result.skipped_summary()})" if result.skipped else ""
        found = f"{result.files_seen} file(s) looked at, none of them a DICOM image{skipped}."
    lines = [f"<b>No DICOM image series found in this {where}:</b>", html.escape(folder), html.escape(found)]
    if result.segmentations:
        lines.append(f"It holds {len(result.segmentations)} DICOM-SEG file(s): labels, not images. Open their image "
                     "series first, then the labels with File &gt; Open labels.")
    lines.append("A NIfTI (.nii, .nii.gz) or NRRD image opens with <b>File &gt; Open NIfTI or NRRD image</b>.")
    return "<br>".join(lines)


class SeriesPickerDialog(QDialog):
    """Scans ``folder`` when shown; ``chosen`` is the selected series after ``accept``. Without any series it
    offers *Open NIfTI or NRRD image...*, which emits ``open_image_requested`` and closes the dialog."""

    open_image_requested = Signal()

    def __init__(self, folder: str, runner: JobRunner, parent=None, single_opens: bool = False) -> None:
        """``single_opens``: a folder of exactly one series opens it without asking (a series retrieved from an
        archive)."""
        super().__init__(parent)
        self.single_opens = single_opens
        self.setWindowTitle(f"Open DICOM - {folder}")
        self.resize(min(900, self._screen_width()), 420)
        self.setMinimumWidth(min(MIN_WIDTH, self._screen_width()))
        self.folder, self.runner = folder, runner
        self.result_: ScanResult | None = None
        self.chosen: Series | None = None
        self.status = QLabel("Scanning...")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.table = self._make_table()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.open_image = QPushButton("Open NIfTI or NRRD image...")
        self.open_image.setToolTip("Close this dialog and choose an image file (File > Open NIfTI or NRRD image)")
        self.open_image.clicked.connect(self._on_open_image_clicked)
        self.buttons.addButton(self.open_image, QDialogButtonBox.ButtonRole.ActionRole)
        self.open_image.hide()  # offered only when the folder holds no series (after addButton, which shows it)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.buttons)
        self.job = runner.run("scan", scan, folder,
                              on_progress=self._on_progress, on_finished=self._on_scanned,
                              on_failed=self._on_failed, on_cancelled=lambda: self.status.setText("Cancelled."))

    def _make_table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels([title for _, title in COLUMNS])
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setWordWrap(False)
        # every column as wide as its text; the last one takes what is left (a narrow screen scrolls instead)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.verticalHeader().setVisible(False)
        table.doubleClicked.connect(lambda _: self.accept())
        return table

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"Scanning failed: {message}")
        self.progress.hide()

    def _on_scanned(self, result: ScanResult) -> None:
        self.result_ = result
        self.progress.hide()
        if not result.series:
            self.status.setTextFormat(Qt.TextFormat.RichText)
            self.status.setText(no_series_message(self.folder, result))
            self.table.hide()
            self.buttons.button(QDialogButtonBox.StandardButton.Open).hide()
            self.open_image.show()
            self.open_image.setDefault(True)
            self.open_image.setFocus()
            self.resize(self.width(), self.sizeHint().height())
            return
        skipped = f"; {result.skipped_summary()}" if result.skipped else ""
        self.status.setText(f"{len(result.series)} series in {result.files_seen} file(s){skipped}. "
                            "Double-click a series to open it.")
        self._fill(result.series)
        self.table.selectRow(0)
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(True)
        if self.single_opens and len(result.series) == 1:
            self.accept()

    def _fill(self, series_list: list[Series]) -> None:
        self.table.setRowCount(len(series_list))
        for row, series in enumerate(series_list):
            summary = series.summary()
            summary["date"] = readable_date(summary["date"])
            for col, (key, _) in enumerate(COLUMNS):
                item = QTableWidgetItem(summary[key])
                if key == "slices":
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if series.notes:
                    item.setToolTip("\n".join(series.notes))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self._fit_width()

    def _fit_width(self) -> None:
        """Wide enough for every column's whole text, within the screen's available width."""
        table = self.table
        columns = sum(table.columnWidth(c) for c in range(table.columnCount()))
        margins = self.layout().contentsMargins()
        needed = (columns + 2 * table.frameWidth() + table.verticalScrollBar().sizeHint().width()
                  + margins.left() + margins.right())
        width = min(max(MIN_WIDTH, needed), self._screen_width())
        self.setMinimumWidth(width)
        self.resize(max(self.width(), width), self.height())

    def _screen_width(self) -> int:
        screen = self.screen()
        return screen.availableGeometry().width() if screen is not None else 1 << 16

    def _on_open_image_clicked(self) -> None:
        self.reject()
        self.open_image_requested.emit()

    def accept(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if self.result_ is None or not rows:
            return
        self.chosen = self.result_.series[min(rows)]
        super().accept()

    def reject(self) -> None:
        self.job.cancel()
        super().reject()
