"""Take the README's screenshots of the real window (run under Xvfb: see docs/README or the command below).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/screenshots.py

Opens the dcmqi 3-slice CT from ../shared/data with its DICOM-SEG liver through the app's own loading code,
then saves the whole screen with ImageMagick's `import -window root` (falls back to QWidget.grab()).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QTimer

from unetgui.app import create_app
from unetgui.formats.dicom import scan
from unetgui.ui.main_window import MainWindow

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dcmqi-ct-3slice-liver-seg"
OUT = Path(__file__).resolve().parent / "images"


def shoot(window: MainWindow, name: str) -> None:
    path = OUT / name
    if shutil.which("import"):
        subprocess.run(["import", "-window", "root", str(path)], check=True)
    else:
        window.grab().save(str(path))
    print("saved", path)


def open_window():
    """The app, its main window filling the 1600 x 1000 screen, and the dcmqi CT series (not yet loaded)."""
    app = create_app([])
    window = MainWindow()
    window.resize(1600, 1000)
    window.move(0, 0)
    window.show()
    (series,) = scan(str(DATA / "ct")).series
    return app, window, series


def main() -> int:
    app, window, series = open_window()
    steps = [
        lambda: window.io.load_series(series),
        lambda: window.io.open_labels(str(DATA / "seg" / "liver_seg.dcm")),
        lambda: (window.session.set_slice(1), window.session.set_reviewed(1), window.view.set_window(400, 40),
                 window.tools.set_overlay(opacity=0.45)),
        lambda: window.view._on_mouse_moved(window.view.mapToScene(window.view.viewport().rect().center())),
        lambda: shoot(window, "viewer_axial_liver.png"),
        lambda: (window.tools.set_overlay(outline=True), window.view.set_plane("axial")),
        lambda: shoot(window, "viewer_outline.png"),
        app.quit,
    ]
    for i, step in enumerate(steps):
        QTimer.singleShot(1500 + 1200 * i, step)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
