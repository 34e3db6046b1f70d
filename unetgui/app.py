"""Composition root of the desktop app: QApplication, main window, event loop."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from unetgui import __version__
from unetgui.ui.main_window import MainWindow

RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def create_app(argv: list[str]) -> QApplication:
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName("unetgui")
    app.setOrganizationName("unetgui")
    app.setApplicationVersion(__version__)
    icon = RESOURCES / "unetgui.svg"
    if icon.is_file():  # absent only in a wheel install without resources; Qt then uses its default
        app.setWindowIcon(QIcon(str(icon)))
    return app


def run(argv: list[str]) -> int:
    """Open the main window (and ``argv[0]`` when it is a path) and run the event loop."""
    app = create_app(argv)
    window = MainWindow()
    window.show()
    paths = [a for a in argv if not a.startswith("-")]
    if paths:
        window.io.open_path(paths[0])
    return app.exec()
