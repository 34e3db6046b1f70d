"""The first thing a user sees: open a DICOM folder, open a project, try the sample; recent projects."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget


class WelcomePanel(QWidget):
    open_dicom = Signal()
    open_project = Signal()
    try_sample = Signal()
    open_recent = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        title = QLabel("<h1>unetgui</h1><p>U-Net segmentation of CT and MR images: segment, correct, retrain, export.</p>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        buttons = QHBoxLayout()
        for text, tip, signal in (
                ("Open DICOM folder...", "A CT or MR series (Ctrl+O); NIfTI or NRRD files: File menu or drag and drop", self.open_dicom),
                ("Open project...", "A unetgui project folder with its labels and models", self.open_project),
                ("Try the sample", "A small synthetic CT with 4 annotated slices and a model: segment, correct, "
                 "retrain and export in two minutes", self.try_sample)):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.setMinimumSize(200, 56)
            button.clicked.connect(signal.emit)
            buttons.addWidget(button)
        self.sample_button = buttons.itemAt(2).widget()
        self.recent = QListWidget()
        self.recent.setMaximumWidth(640)
        self.recent.setMaximumHeight(180)
        self.recent.itemActivated.connect(lambda item: self.open_recent.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.recent_title = QLabel("<b>Recent projects</b> (double-click to open)")
        hint = QLabel("You can also drop a DICOM folder or a NIfTI file on this window. Every edit is saved "
                      "automatically into the open project.")
        hint.setWordWrap(True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(title)
        layout.addLayout(buttons)
        layout.addSpacing(24)
        layout.addWidget(self.recent_title, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.recent, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(hint)
        layout.addStretch(3)

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for path in paths:
            item = QListWidgetItem(f"{os.path.basename(path)}    {path}")
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.recent.addItem(item)
        self.recent.setVisible(bool(paths))
        self.recent_title.setVisible(bool(paths))
