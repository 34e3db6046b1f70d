"""Child process of the GUI crash test: the real window opens a project, shows the sagittal plane and paints
strokes with mouse events, printing ``k done <crc of the labels> <sagittal review flags> <crc of the annotation
mask>`` after each (the project's state says whether an edit marks its plane reviewed); at
stroke ``kill_at`` it prints ``k moving`` in the middle of the drag and waits there to be killed (SIGKILL).

    python gui_planes_child.py PROJECT_ROOT SETTINGS_FOLDER KILL_AT
"""

from __future__ import annotations

import sys
import time
import zlib

from PySide6.QtCore import QEvent, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication


def send(view, kind, point, buttons) -> None:
    target = view.viewport()
    pos = QPointF(point)
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    QApplication.sendEvent(target, QMouseEvent(kind, pos, QPointF(target.mapToGlobal(point)), button, buttons,
                                               Qt.KeyboardModifier.NoModifier))


def widget_point(view, row: float, col: float):
    return view.mapFromScene(view.vb.mapViewToScene(view.view_point(row, col)))


def stroke_path(k: int, rows: int, cols: int) -> list[tuple[float, float]]:
    """Stroke ``k``'s (row, column) points in the sagittal plane (rows z, columns y)."""
    row0 = 1 + k % (rows - 2)
    return [(row0 + 0.3 * i, 6 + (k * 5) % (cols - 20) + 1.5 * i) for i in range(8)]


def main() -> None:
    root, settings, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings)
    from unetgui.app import create_app
    from unetgui.ui.main_window import MainWindow

    app = create_app([])
    window = MainWindow()
    window.resize(1000, 700)
    window.show()
    window.projects.open_project(root)
    deadline = time.monotonic() + 60
    while not (window.session.is_open and not window.runner.busy) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    session, view = window.session, window.view
    view.set_plane("sagittal")
    window.tools.tool = "brush"
    window.tools.brush_size = 4
    rows, cols = session.volume.shape[0], session.volume.shape[1]
    for k in range(10_000):
        session.set_index(5 + (k * 7) % (session.volume.shape[2] - 10))
        app.processEvents()
        points = [widget_point(view, r, c) for r, c in stroke_path(k, rows, cols)]
        send(view, QEvent.Type.MouseButtonPress, points[0], Qt.MouseButton.LeftButton)
        for i, p in enumerate(points[1:], start=1):
            time.sleep(0.012)  # a hand's pace: pyqtgraph drops moves closer than 10 ms apart
            send(view, QEvent.Type.MouseMove, p, Qt.MouseButton.LeftButton)
            if k == kill_at and i == len(points) // 2:
                print(f"{k} moving", flush=True)
                time.sleep(600)  # killed here, mid-drag
        send(view, QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)
        app.processEvents()
        flags = "".join("1" if f else "0" for f in session.reviewed_sagittal)
        print(f"{k} done {zlib.crc32(session.labels.labels.tobytes())} {flags} "
              f"{zlib.crc32(session.annotated.tobytes())}", flush=True)


if __name__ == "__main__":
    main()
