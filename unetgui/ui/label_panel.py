"""The label table: name, value, colour, visibility; add, rename (Rename... or a double-click), recolour; the
active label."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QSignalBlocker, QSize, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog, QHBoxLayout, QHeaderView, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from unetgui.core.session import Session
from unetgui.core.volume import Label
from unetgui.ui.label_prompt import rename_label
from unetgui.ui.tool_state import ToolState


class _Table(QTableWidget):
    def sizeHint(self) -> QSize:  # noqa: N802
        """About five rows: the tools below get the rest of the dock column (the table scrolls; a user can drag
        the dock border for more)."""
        rows = self.verticalHeader().defaultSectionSize()
        return QSize(super().sizeHint().width(), self.horizontalHeader().sizeHint().height() + 5 * rows + 4)


class LabelPanel(QWidget):
    def __init__(self, session: Session, tools: ToolState) -> None:
        super().__init__()
        self.session, self.tools = session, tools
        self.table = _Table(0, 3)
        self.table.setHorizontalHeaderLabels(["", "Label", "Value"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 28)
        self.table.setColumnWidth(2, 48)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        add, colour = QPushButton("Add"), QPushButton("Colour...")
        self.rename = QPushButton("Rename...")
        self.rename.setToolTip("Say what the selected label is: a structure of the image's modality (with the "
                               "codes exports write) or any name")
        add.clicked.connect(self._on_add_clicked)
        self.rename.clicked.connect(self._on_rename_clicked)
        colour.clicked.connect(self._on_colour_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(self.rename)
        buttons.addWidget(colour)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.table.itemChanged.connect(self._on_item_changed)
        session.listeners.table_changed.append(self._show)

    def _show(self) -> None:
        with QSignalBlocker(self.table):
            labels = list(self.session.table)
            self.table.setRowCount(len(labels))
            for row, label in enumerate(labels):
                visible = QTableWidgetItem()
                visible.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                visible.setCheckState(Qt.CheckState.Unchecked if label.value in self.tools.hidden_labels else Qt.CheckState.Checked)
                visible.setBackground(QColor(*label.color))
                visible.setToolTip("shown (untick to hide)")
                name = QTableWidgetItem(label.name)
                name.setToolTip(coding_tip(label))
                value = QTableWidgetItem(str(label.value))
                value.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                for col, item in enumerate((visible, name, value)):
                    item.setData(Qt.ItemDataRole.UserRole, label.value)
                    self.table.setItem(row, col, item)
                if label.value == self.session.active_label:
                    self.table.selectRow(row)

    def _value_of_row(self, row: int) -> int | None:
        item = self.table.item(row, 2)
        return None if item is None else int(item.text())

    def _on_selection_changed(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if rows:
            value = self._value_of_row(min(rows))
            if value is not None:
                self.session.set_active_label(value)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        value = item.data(Qt.ItemDataRole.UserRole)
        label = self.session.table.get(value)
        if label is None:
            return
        if item.column() == 1 and item.text().strip() and item.text() != label.name:
            self.session.update_label(label.renamed(item.text().strip()))
        elif item.column() == 0:
            hidden = set(self.tools.hidden_labels)
            (hidden.discard if item.checkState() == Qt.CheckState.Checked else hidden.add)(value)
            self.tools.set_overlay(hidden=hidden)

    def _on_add_clicked(self) -> None:
        if not self.session.is_open:
            return
        label = self.session.add_label()
        self.session.set_active_label(label.value)
        self._show()

    def _on_rename_clicked(self) -> None:
        if self.session.table.get(self.session.active_label) is not None:
            rename_label(self, self.session, self.session.active_label)

    def _on_colour_clicked(self) -> None:
        label = self.session.table.get(self.session.active_label)
        if label is None:
            return
        colour = QColorDialog.getColor(QColor(*label.color), self, f"Colour of {label.name}")
        if colour.isValid():
            self.session.update_label(replace(label, color=(colour.red(), colour.green(), colour.blue())))


def coding_tip(label: Label) -> str:
    """What DICOM-SEG and Slicer exports will say the label is: the codes its file gave it, else its name's."""
    if not label.codes:
        return ("Rename... or double-click to rename. Exports code the label by its name (e.g. \"liver\", "
                "\"left kidney\").")
    return (f"Coded as {label.coded_as(numbers=True)}, as chosen with Rename... or said by the file it came from; "
            "typing another name over it drops these codes.")
