"""Composition root of the desktop app: QApplication, main window, event loop."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from unetgui import __version__
from unetgui.ui.main_window import MainWindow


def create_app(argv: list[str]) -> QApplication:
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName("unetgui")
    app.setOrganizationName("unetgui")
    app.setApplicationVersion(__version__)
    return app


def run(argv: list[str]) -> int:
    """Open the main window and run the event loop; returns the exit code."""
    app = create_app(argv)
    window = MainWindow()
    window.show()
    return app.exec()
