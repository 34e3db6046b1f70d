"""The main window. For now a placeholder shell: the viewer and tools arrive with the GUI issues."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox

from unetgui import __version__


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("unetgui")
        self.resize(1200, 800)
        placeholder = QLabel(
            "<h2>unetgui</h2><p>The slice viewer is not built yet.</p>"
            "<p>Headless commands work today: <code>unetgui info FOLDER</code>, "
            "<code>unetgui convert --input FOLDER --output image.nii.gz</code>.</p>"
        )
        placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setCentralWidget(placeholder)
        file_menu = self.menuBar().addMenu("&File")
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close)
        file_menu.addAction(quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(QAction("&About unetgui", self, triggered=self._on_about_triggered))
        self.statusBar().showMessage("Ready")

    def _on_about_triggered(self) -> None:
        QMessageBox.about(self, "About unetgui", f"unetgui {__version__}\nU-Net segmentation of medical images.")
