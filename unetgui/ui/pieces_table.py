"""The statistics dock's *Pieces* tab: every connected piece of every label (each lesion of a lesion label, each
island of a prediction), largest first within its label, with its volume and diameters; a click takes the view to
the piece's slice of its longest diameter and draws its RECIST calipers there (ui/calipers.py), as a radiologist
steps through lesions.

The numbers are :class:`unetgui.core.statistics.PieceStats`, measured with the label's statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from unetgui.core.statistics import MAX_PIECES, PieceStats, SegmentStats
from unetgui.ui.numbers import number

COLUMNS = (
    ("Label", "The label the piece belongs to"),
    ("Piece", "The piece's number within its label, 1 the largest (connected by faces: 6-connectivity)"),
    ("Volume\n(mL)", "The piece's voxel count x voxel volume"),
    ("Long × short\n(mm)", "The piece's longest diameter on a slice and the longest across it (RECIST), "
                           "edge to edge of the voxels"),
    ("Slice", "The slice of the longest diameter, counted from 1 as the slider counts"),
    ("Feret\n(mm)", "The piece's largest 3-D diameter"),
)


@contextlib.contextmanager
def batch_fill(table: QTableWidget) -> Iterator[None]:
    """Fill ``table`` with its columns sized once at the end: a header that resizes to its contents measures every
    column again at each item set (hundreds of rows took seconds on the GUI thread)."""
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    table.setUpdatesEnabled(False)
    try:
        yield
    finally:
        table.resizeColumnsToContents()
        table.setUpdatesEnabled(True)


def _number(value: float) -> str:
    if 0 < value < 0.005:
        return "< 0.01"  # a speck of a few voxels is not nothing (its voxels are in the tooltip)
    return number(value)


class PiecesTable(QTableWidget):
    """``chosen(piece)``: the user clicked a piece (its :class:`PieceStats`)."""

    chosen = Signal(object)

    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        for col, (title, tip) in enumerate(COLUMNS):
            item = QTableWidgetItem(title)
            item.setToolTip(tip)
            self.setHorizontalHeaderItem(col, item)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setMaximumSectionSize(200)
        self.setToolTip("Each connected piece of each label; click one to go to it")
        self._pieces: list[PieceStats] = []
        self.cellClicked.connect(self._on_clicked)

    def show_pieces(self, results: list[SegmentStats], names: dict[int, tuple[str, QColor]],
                    hidden: set[int]) -> None:
        """One row per piece of each label in ``results``; ``names``: each label's name and colour as shown now;
        a label in ``hidden`` is greyed."""
        with batch_fill(self):
            self._fill(results, names, hidden)

    def _fill(self, results: list[SegmentStats], names: dict[int, tuple[str, QColor]], hidden: set[int]) -> None:
        rows = [(s, p) for s in results for p in s.pieces]
        self.setRowCount(len(rows))
        self._pieces = [p for _, p in rows]
        grey = self.palette().color(self.palette().ColorGroup.Disabled, self.palette().ColorRole.Text)
        for row, (s, p) in enumerate(rows):
            name, colour = names.get(s.label, (s.name, QColor(128, 128, 128)))
            more = f" (the {MAX_PIECES} largest of {s.components})" if s.components > len(s.pieces) else ""
            texts = [name, f"{p.piece} of {s.components}", _number(p.volume_ml),
                     f"{_number(p.long_diameter_mm)} × {_number(p.short_diameter_mm)}", str(p.long_diameter_slice + 1),
                     _number(p.feret_mm)]
            for col, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setData(Qt.ItemDataRole.DecorationRole, colour)
                    item.setToolTip(f"{name}{more}")
                else:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    item.setToolTip(f"{name}, piece {p.piece}: {p.voxels:,} voxels, {p.volume_mm3:,.1f} mm³; click to go "
                                    "to it and show its diameters")
                if s.label in hidden:
                    item.setForeground(grey)
                self.setItem(row, col, item)

    def _on_clicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self._pieces):
            self.chosen.emit(self._pieces[row])
