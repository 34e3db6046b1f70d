"""Helpers of the GUI tests (tests/ui): drive the real window with mouse events, open and paint images.
The ``window`` fixture itself is in conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import phantom_hu
from unetgui.core.session import BrushSettings
from unetgui.core.volume import Volume


def _open_phantom(window, qtbot, spacing=(2.0, 0.8, 0.8)):
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    window.session.open(Volume(phantom_hu((10, 64, 80)), affine, "CT"))
    window.view.set_plane("axial")
    window.view._reset_geometry()
    qtbot.wait(50)


def _widget_point(view, row: float, col: float):
    """The viewport point showing the centre of pixel (row, col) of the axial slice (array coordinates)."""
    return view.mapFromScene(view.vb.mapViewToScene(view.view_point(row, col)))


def _drag(qtbot, view, points, button=None, pace_ms=0):
    """A drag through ``points``; ``pace_ms`` between moves makes it a hand's drag for pyqtgraph, which takes
    a press and release with moves closer than 10 ms apart for a click."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    button = button or Qt.MouseButton.LeftButton
    target = view.viewport()

    def send(kind, p, buttons):
        pos = QPointF(p)
        event = QMouseEvent(kind, pos, QPointF(target.mapToGlobal(p)), button if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton,
                            buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(target, event)

    send(QEvent.Type.MouseButtonPress, points[0], button)
    for p in points[1:]:
        if pace_ms:
            qtbot.wait(pace_ms)
        send(QEvent.Type.MouseMove, p, button)
    send(QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)
    qtbot.wait(20)


def _line(view, row, col0, col1, n=12):
    return [_widget_point(view, row, c) for c in np.linspace(col0, col1, n)]


def _nifti(tmp_path: Path, name: str, shape=(10, 64, 80), seed=0) -> str:
    from unetgui.formats import nifti

    path = str(tmp_path / name)
    nifti.write_image(Volume(phantom_hu(shape, seed), np.diag([0.8, 0.8, 2.0, 1.0]), "CT"), path)
    return path


def _open(window, qtbot, path: str) -> None:
    before = window.session.generation
    window.io.open_path(path)
    qtbot.waitUntil(lambda: window.session.generation > before and not window.runner.busy, timeout=30_000)


def _paint(window, z: int, y: float, x: float) -> None:
    window.session.set_slice(z)
    window.session.begin_stroke()
    window.session.paint_segment(y, x, y, x + 12, BrushSettings(radius=4))
    window.session.end_stroke()
