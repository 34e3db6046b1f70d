"""Help > Keyboard shortcuts: a two-column table (action, keys) whose columns show their whole text, in a
dialog as wide as the table and no taller than the screen (the table scrolls beyond that)."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QDialog, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

SCREEN_SHARE = 0.9  # of the screen's available height, at most


class ShortcutsDialog(QDialog):
    """``rows``: (action, shortcut) pairs, e.g. ``Actions.listing()``."""

    def __init__(self, parent: QWidget | None, rows: list[tuple[str, str]]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        for r, (name, keys) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(name))
            self.table.setItem(r, 1, QTableWidgetItem(keys))
        self.table.resizeColumnsToContents()
        self.table.resizeRowsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        self._fit()

    def _fit(self) -> None:
        """As wide as both columns (and a vertical scroll bar), as tall as every row, within the screen."""
        table, margins = self.table, self.layout().contentsMargins()
        frame = 2 * table.frameWidth()
        width = (table.columnWidth(0) + table.columnWidth(1) + frame + table.verticalScrollBar().sizeHint().width()
                 + margins.left() + margins.right())
        height = (table.horizontalHeader().height() + sum(table.rowHeight(r) for r in range(table.rowCount())) + frame
                  + margins.top() + margins.bottom())
        screen = self.screen().availableGeometry() if self.screen() else None
        if screen is not None:
            width, height = min(width, screen.width()), min(height, int(screen.height() * SCREEN_SHARE))
        self.setMinimumWidth(width)
        self.resize(width, height)
