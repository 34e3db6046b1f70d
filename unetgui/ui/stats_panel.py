"""The statistics dock (issue 27): per label the volume, diameters, surface, intensities, extent and pieces as a
table, the area per slice as a plot and each connected piece (each lesion) in the Pieces tab, where a click goes to
the piece; live while the dock is shown.

Every number comes from :func:`unetgui.tasks.stats.document_statistics` (the same task as ``unetgui stats`` and the
export's metrics CSV), run on a worker thread on a copy of the labels: the session keeps changing on the GUI thread
while a measurement runs. Edits are debounced (a brush drag reports every mouse move), at most one measurement runs
at a time and changes that arrive meanwhile make exactly one more; results of an older document are dropped. A
hidden dock measures nothing: it remembers that it is out of date and measures when it is shown.

A measurement shows in two steps: the numbers first, then the surface areas that are not known yet (meshing a large
organ takes seconds; an area is remembered by its label's voxels, so a stroke re-measures only the label it changed).
An edit while areas are being measured cancels that step: the numbers follow the edit, and the areas come when the
labels rest.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView, QAbstractScrollArea, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSplitter,
    QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from unetgui.core import atomic
from unetgui.core.session import Session
from unetgui.core.statistics import PieceStats, SegmentStats
from unetgui.core.volume import LabelMap, default_color
from unetgui.formats.statistics import csv_text
from unetgui.tasks.stats import SurfaceAreas, document_statistics
from unetgui.ui.calipers import Measurement
from unetgui.ui.numbers import decimals_for, number
from unetgui.ui.pieces_table import PiecesTable, batch_fill
from unetgui.ui.tool_state import ToolState
from unetgui.workers.jobs import Job, JobRunner

#: how long the labels must rest before they are measured again (a drag reports every mouse move)
DEBOUNCE_MS = 300
#: the current slice's line: the colour of the slice views' crosshair (the same position)
LINE_COLOR = (80, 200, 255, 200)
HIDDEN_COLOR = (150, 150, 150, 110)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1

#: (header, tooltip) of each column; "{unit}" becomes a line "(HU)" for CT. The tooltips are core/statistics.py's
#: definitions, in a user's words
COLUMNS = (
    ("Label", "The label's colour and name (hover a name for its value and centroid)"),
    ("Voxels", "The label's voxel count"),
    ("Volume\n(mL)", "Voxel count x voxel volume (the grid's affine determinant: right for oblique or sheared "
                     "grids). 1 mL = 1000 mm³ = 1 cm³; 3D Slicer's \"Labelmap\" volume"),
    ("Volume\n(mm³)", "Voxel count x voxel volume, in mm³ (the same volume as the mL column)"),
    ("Diameter\nlong × short (mm)", "The longest diameter on a slice (axial for an axial series, as RECIST measures "
                                    "a lesion) × the longest diameter perpendicular to it on that slice (a node's "
                                    "short axis), edge to edge of the voxels; hover a cell for its slice and the 3-D "
                                    "maximum (Feret) diameter"),
    ("Surface\n(mm²)", "Area of the label's closed surface, measured on the mesh the 3-D view and the export "
                       "build (3D Slicer's \"Closed surface\" area)"),
    ("Mean ± SD{unit}", "Mean and sample standard deviation (N - 1, as ITK) of the image inside the label"),
    ("Min / max{unit}", "The lowest and the highest image value inside the label"),
    ("Median{unit}", "The exact median of the image inside the label"),
    ("P5 / P95{unit}", "The 5th and 95th percentiles of the image inside the label (linear interpolation between "
                       "the closest ranks, numpy's default)"),
    ("Extent x × y × z\n(mm)", "The label's bounding box along the image's columns (x), rows (y) and slices (z): "
                               "voxels across the box x the spacing"),
    ("Pieces\n(largest)", "Connected pieces (neighbours sharing a face: 6-connectivity, ITK's default) and the "
                          "largest piece's share of the label's voxels"),
)
DIAMETER_COLUMN = next(k for k, (title, _) in enumerate(COLUMNS) if title.startswith("Diameter"))


def percent(share: float) -> str:
    """A share as a whole percentage, except that only a whole share reads 100 % (27 pieces of which the largest
    holds 99.6 % are not one piece)."""
    value = 100 * share
    return f"{math.floor(value * 10) / 10:.1f} %" if 99.5 <= value < 100 else f"{value:.0f} %"


def _value(value: float | None, whole: bool | None = None) -> str:
    """An intensity: without decimals when it is a whole number (an integer image's min, max, median: 56, not
    56.0)."""
    whole = value is not None and float(value).is_integer() if whole is None else whole
    return number(value, 0 if whole else None)


def _pair(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "–"
    if float(a).is_integer() and float(b).is_integer():
        return f"{_value(a, True)} / {_value(b, True)}"
    decimals = decimals_for(max(abs(a), abs(b)))  # both alike: "-1.00 / 111.1" would look like a typo
    return f"{number(a, decimals)} / {number(b, decimals)}"


def cells(s: SegmentStats, area_pending: bool = False) -> list[tuple[str, float | None]]:
    """The texts of a row after the label's name, each with its sort key; ``area_pending``: the surface area is
    being measured (an ellipsis, not the dash of "undefined")."""
    mean = "–" if s.mean is None else f"{number(s.mean)} ± {number(s.std)}"
    extent = "–" if not s.voxels else " × ".join(number(v, 0 if v >= 10 else 1) for v in s.extent_mm)  # ~voxels
    pieces = "0" if not s.voxels else f"{s.components} ({percent(s.largest_share)})"
    area = "…" if area_pending and s.surface_mm2 is None else number(s.surface_mm2)
    diameters = "–" if not s.voxels else f"{number(s.long_diameter_mm)} × {number(s.short_diameter_mm)}"
    if len(s.pieces) > 1:  # the largest piece's (core/statistics.py): said, the others are in the Pieces tab
        diameters = f"largest {diameters}"
    return [(f"{s.voxels:,}", s.voxels), (number(s.volume_ml), s.volume_ml), (number(s.volume_mm3), s.volume_mm3),
            (diameters, s.long_diameter_mm), (area, s.surface_mm2), (mean, s.mean), (_pair(s.minimum, s.maximum), s.minimum),
            (_value(s.median), s.median), (_pair(s.p5, s.p95), s.p5), (extent, float(np.prod(s.extent_mm))),
            (pieces, s.components)]


def _diameter_tip(s: SegmentStats) -> str:
    where = (f"longest {number(s.long_diameter_mm)} mm on slice {s.long_diameter_slice + 1}, "
             f"{number(s.short_diameter_mm)} mm across it")
    if len(s.pieces) <= 1:
        return f"{where[0].upper()}{where[1:]}; 3-D maximum (Feret) {number(s.feret_mm)} mm"
    return (f"The largest of {s.components} pieces: {where} (each piece in the Pieces tab). The 3-D maximum (Feret) "
            f"across all pieces: {number(s.feret_mm)} mm")


class _Cell(QTableWidgetItem):
    """Sorts by its number, not its text ("1,200" after "900")."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if a is None or b is None:
            return super().__lt__(other)
        return a < b


class StatsPanel(QWidget):
    """The Statistics dock's contents. ``results`` holds the last measurement and ``updated`` says it changed (a
    failed measurement keeps the last results and says why in ``status``); ``pending`` is True until the results
    show the labels as they are."""

    updated = Signal()

    def __init__(self, session: Session, tools: ToolState, runner: JobRunner) -> None:
        super().__init__()
        self.session, self.tools, self.runner = session, tools, runner
        self.results: list[SegmentStats] = []
        self.seconds: float | None = None  # how long the last measurement took
        self._job: Job | None = None
        self._dirty = False  # the labels changed since the last measurement began
        self._areas = SurfaceAreas()  # this document's measured surface areas (a new document: a new one)
        self.measuring_areas = False  # the running measurement shows its numbers and measures surface areas
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.measure)
        self.status = QLabel("")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the statistics as CSV (one row per label, then the area of each slice)")
        self.save_button = QPushButton("Save CSV...")
        self.save_button.setToolTip("Save the statistics as a CSV file (what Copy copies)")
        self.copy_button.clicked.connect(self._on_copy_clicked)
        self.save_button.clicked.connect(self._on_save_clicked)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.status, 1)
        top.addWidget(self.copy_button)
        top.addWidget(self.save_button)
        self.splitter = splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._table())
        self.pieces = PiecesTable()
        self.pieces.chosen.connect(self._go_to)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._plot(), "Area per slice")
        self.tabs.addTab(self.pieces, "Pieces")
        self.tabs.setTabToolTip(1, "Each connected piece of each label (each lesion), with its volume and diameters; "
                                   "click one to go to it")
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 0)  # the table as wide as its columns, the plot the rest
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        self._split_by_user = False
        splitter.splitterMoved.connect(lambda *_: setattr(self, "_split_by_user", True))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 4)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        listeners = session.listeners
        listeners.volume_changed.append(self._on_volume_changed)
        listeners.labels_changed.append(lambda slices, box: self._on_labels_changed())
        listeners.table_changed.append(self._on_table_changed)
        listeners.slice_changed.append(lambda index: self._show_slice())
        listeners.position_changed.append(lambda axis: self._show_slice() if axis == 0 else None)
        listeners.closed.append(self._on_closed)
        self._hidden = set(tools.hidden_labels)
        tools.overlay_changed.connect(self._on_overlay_changed)
        self._show()

    def sizeHint(self) -> QSize:  # noqa: N802
        """A bottom dock of about 250 px: the slice view keeps most of a laptop's height."""
        return QSize(1000, 230)

    def _table(self) -> QTableWidget:
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        header.setStretchLastSection(False)
        header.setMaximumSectionSize(240)  # a long label name is elided (its tooltip has it)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # in label order until a header is clicked
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self._sortable()
        return self.table

    def _plot(self) -> pg.PlotWidget:
        """The area per axial slice; a click goes to that slice (as the slider does)."""
        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(260, 150)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)  # a click means "go there", not "pan"
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "axial slice")
        self.plot.setLabel("left", "area (mm²)")
        self.plot.showGrid(y=True, alpha=0.2)
        self.plot.setToolTip("Area of each label per axial slice; click to go to a slice")
        self.slice_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(LINE_COLOR, width=1))
        self.slice_line.setZValue(10)
        self.plot.addItem(self.slice_line)
        self.curves: dict[int, pg.PlotDataItem] = {}
        self.plot.scene().sigMouseClicked.connect(self._on_plot_clicked)
        return self.plot

    # -- measuring -------------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """The results do not show the labels yet (a measurement waits or runs, or the dock is hidden)."""
        return self.session.is_open and (self._dirty or self._job is not None or self._timer.isActive())

    @property
    def measuring(self) -> bool:
        """A measurement runs on its worker thread."""
        return self._job is not None

    def _changed(self) -> None:
        self._dirty = True
        if self._job is not None and self.measuring_areas:
            self._job.cancel()  # areas of labels that changed again: the numbers first (areas measured are kept)
        if self.isVisible():
            self._timer.start()  # restarted by every change: measured once the labels rest

    def measure(self) -> None:
        """Measure the labels now on a worker thread (or once more after the one that runs)."""
        self._timer.stop()
        if not self.session.is_open or self._job is not None:
            return  # a running measurement measures again when it ends (the flag stays set)
        self._dirty = False
        labels = self.session.labels
        copy = LabelMap(labels.labels.copy(), labels.affine.copy(), labels.table)  # the session edits its own
        generation, start = self.session.generation, time.perf_counter()
        self.status.setText("measuring...")
        # the volume is never written in place (a new image is a new Volume), so the worker may read it
        self._job = self.runner.run("statistics", document_statistics, self.session.volume, copy, areas=self._areas,
                                    on_item=lambda r: self._on_numbers(r, generation),
                                    on_finished=lambda r: self._on_measured(r, generation, start),
                                    on_failed=self._on_failed, on_done=self._on_done)

    def _on_numbers(self, results: list[SegmentStats], generation: int) -> None:
        """The first step: every number but the areas not known yet."""
        if generation != self.session.generation:
            return
        self.results, self.measuring_areas = results, True
        if self._dirty and self._job is not None:
            self._job.cancel()  # edited while the numbers were measured: their areas are out of date already
        missing = sum(s.surface_mm2 is None for s in results)
        self.status.setText(f"{len(results)} label{'s' if len(results) != 1 else ''}; measuring "
                            f"{missing} surface{'s' if missing != 1 else ''}...")
        self._show()
        self.updated.emit()

    def _on_measured(self, results: list[SegmentStats], generation: int, start: float) -> None:
        if generation != self.session.generation:
            return  # measured for a document that is gone
        self.results, self.seconds, self.measuring_areas = results, time.perf_counter() - start, False
        n = len(results)
        self.status.setText(f"{n} label{'s' if n != 1 else ''}, measured in {self.seconds:.1f} s")
        self._show()
        self.updated.emit()

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"Could not measure the labels: {message}")

    def _on_done(self) -> None:
        self._job, self.measuring_areas = None, False
        if self._dirty and self.isVisible() and not self._timer.isActive():
            self.measure()  # the changes that came meanwhile, already debounced

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._dirty and self.session.is_open and not self._timer.isActive():
            QTimer.singleShot(0, self, self._measure_if_dirty)  # once the dock has drawn itself

    def _measure_if_dirty(self) -> None:
        if self._dirty and self.isVisible():
            self.measure()

    # -- document events -------------------------------------------------------------------------
    def _on_volume_changed(self) -> None:
        if self._job is not None:
            self._job.cancel()  # its result is for the last document
        self.results, self._areas = [], SurfaceAreas()
        self.tools.set_calipers(None)
        self._show()
        self._changed()

    def _on_labels_changed(self) -> None:
        self.tools.set_calipers(None)  # measured on labels that are no more
        self._changed()

    def _on_table_changed(self) -> None:
        self._show()  # a new name or colour at once; a new label gets its row once measured
        self._changed()

    def _on_overlay_changed(self) -> None:
        if self.tools.hidden_labels != self._hidden:  # hidden labels are greyed (not every opacity step redraws)
            self._hidden = set(self.tools.hidden_labels)
            self._show()

    def _on_closed(self) -> None:
        self._timer.stop()
        if self._job is not None:
            self._job.cancel()
        self._dirty = False
        self.results, self.seconds, self._areas = [], None, SurfaceAreas()
        self.tools.set_calipers(None)
        self.status.setText("")
        self._show()

    # -- showing ---------------------------------------------------------------------------------
    def _label(self, s: SegmentStats) -> tuple[str, QColor]:
        """The label's name and colour as the label table has them now (a rename shows before the next
        measurement)."""
        label = self.session.table.get(s.label)
        if label is None:
            return s.name, QColor(*default_color(s.label))
        return label.name, QColor(*label.color)

    def _show(self) -> None:
        self._show_table()
        self._show_curves()
        self._show_slice()
        self.pieces.show_pieces(self.results, {s.label: self._label(s) for s in self.results}, self.tools.hidden_labels)
        n = self.pieces.rowCount()
        self.tabs.setTabText(1, f"Pieces ({n})" if n else "Pieces")
        self.copy_button.setEnabled(bool(self.results))
        self.save_button.setEnabled(bool(self.results))

    def _show_table(self) -> None:
        unit = next((s.unit for s in self.results if s.unit), "")
        for col, (title, tip) in enumerate(COLUMNS):
            item = QTableWidgetItem(title.format(unit=f"\n({unit})" if unit else ""))
            item.setToolTip(tip)
            self.table.setHorizontalHeaderItem(col, item)
        self.table.setSortingEnabled(False)  # rows filled while sorting move under the filling
        with batch_fill(self.table):
            self._fill_table()
        self._sortable()
        self._fit_table()

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.results))
        grey = self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        for row, s in enumerate(self.results):
            name, colour = self._label(s)
            hidden = s.label in self.tools.hidden_labels
            item = QTableWidgetItem(name)
            item.setData(Qt.ItemDataRole.DecorationRole, colour)
            centroid = ", ".join(f"{v:.1f}" for v in s.centroid_ras) if s.voxels else "none (empty)"
            item.setToolTip(f"{name}: value {s.label}; centroid (R, A, S) {centroid} mm"
                            + ("; hidden in the view" if hidden else ""))
            self.table.setItem(row, 0, item)
            for col, (text, key) in enumerate(cells(s, self.measuring_areas), start=1):
                cell = _Cell(text)
                cell.setData(SORT_ROLE, float("-inf") if key is None else float(key))
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if col == DIAMETER_COLUMN and s.voxels:
                    cell.setToolTip(_diameter_tip(s))
                self.table.setItem(row, col, cell)
            if hidden:
                for col in range(len(COLUMNS)):
                    self.table.item(row, col).setForeground(grey)

    def _sortable(self) -> None:
        """A click on a header sorts, without the indicator: its room (~34 px in each of 11 headers) would push the
        last columns out of a 1280 px screen."""
        self.table.setSortingEnabled(True)  # (shows the indicator again)
        self.table.horizontalHeader().setSortIndicatorShown(False)

    def _fit_table(self) -> None:
        """Widen the table to its columns when new numbers need more room (the plot keeps at least its minimum),
        unless the user placed the splitter."""
        sizes = self.splitter.sizes()
        need = self.table.sizeHint().width()
        if self._split_by_user or sum(sizes) <= 0 or sizes[0] >= need:
            return
        table = min(need, sum(sizes) - max(self.tabs.minimumSizeHint().width(), self.plot.minimumWidth()))
        self.splitter.setSizes([table, sum(sizes) - table])

    def _show_curves(self) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.curves = {}
        for s in self.results:
            on = np.flatnonzero(s.slice_area_mm2)
            if not on.size:
                continue  # an empty label: no line along zero over the others' baselines
            areas = np.asarray(s.slice_area_mm2, float)[on[0]:on[-1] + 1]  # over the slices it spans, gaps included
            edges = np.arange(on[0], on[-1] + 2) + 0.5  # slice k (1-based, as the slider counts) spans k +- 0.5
            _, colour = self._label(s)
            if s.label in self.tools.hidden_labels:
                pen, brush = pg.mkPen(HIDDEN_COLOR, width=1, style=Qt.PenStyle.DashLine), None
            else:
                rgb = (colour.red(), colour.green(), colour.blue())
                pen, brush = pg.mkPen(rgb, width=2), pg.mkBrush(*rgb, 50)
            self.curves[s.label] = self.plot.plot(edges, areas, stepMode="center", pen=pen, brush=brush,
                                                  fillLevel=0 if brush else None, name=s.name)
        if self.session.is_open:
            self.plot.setXRange(0.5, self.session.volume.shape[0] + 0.5, padding=0)
        self.plot.enableAutoRange(y=True)

    def _show_slice(self) -> None:
        """The line at the axial slice shown (or crossed by the shown plane), counted from 1."""
        self.slice_line.setVisible(self.session.is_open)
        if self.session.is_open:
            self.slice_line.setValue(self.session.current_slice + 1)

    # -- user actions ----------------------------------------------------------------------------
    def _on_plot_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self.session.is_open:
            return
        box = self.plot.getPlotItem().getViewBox()
        if not box.sceneBoundingRect().contains(event.scenePos()):
            return
        self.session.set_slice(int(round(box.mapSceneToView(event.scenePos()).x())) - 1)  # clipped by the session

    def _go_to(self, piece: PieceStats) -> None:
        """A piece picked in the Pieces tab: the view shows the slice of its longest diameter, the crosshair of linked
        planes at the diameter's middle, and its calipers (ui/calipers.py)."""
        if not self.session.is_open:
            return
        if piece.axes is None:
            self.session.set_position(piece.go_to)
            return
        (x0, y0), (x1, y1) = piece.axes.long
        self.session.set_position((piece.axes.slice, math.floor((y0 + y1) / 2 + 0.5), math.floor((x0 + x1) / 2 + 0.5)))
        self.tools.set_calipers(Measurement(piece.axes, piece.long_diameter_mm, piece.short_diameter_mm))

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(csv_text(self.results))
        self.status.setText(f"Copied the statistics of {len(self.results)} label(s) as CSV{self._areas_note()}")

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save statistics", "statistics.csv", "CSV (*.csv);;All files (*)")
        if not path:
            return
        try:
            self.save_csv(path)
        except OSError as exc:
            self.status.setText(f"Could not save {os.path.basename(path)}: {exc.strerror or exc}")
            return
        self.status.setText(f"Saved {path}{self._areas_note()}")

    def _areas_note(self) -> str:
        missing = sum(s.surface_mm2 is None for s in self.results)
        return f" ({missing} surface area(s) still being measured: left empty)" if missing else ""

    def save_csv(self, path: str) -> None:
        """The shown statistics as CSV (formats/statistics.py, the one writer), replacing ``path`` atomically."""
        atomic.write_bytes(path, csv_text(self.results).encode("utf-8"))
