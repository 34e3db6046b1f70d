"""Screenshots of editing in the sagittal and coronal views (issue 16), of the real window under Xvfb:

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/screenshots_planes.py

Opens the sample study (its model segments the volume), shows the sagittal plane through the liver, paints a
correction there with mouse events as a hand would (which marks the plane reviewed), and saves
docs/images/sagittal_editing.png; then the coronal view with its slider's partly annotated planes,
docs/images/coronal_editing.png. A throwaway data folder keeps the user's own projects out of it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from PySide6.QtCore import QEvent, QPointF, Qt, QTimer
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from screenshots import shoot  # noqa: E402


def drag(view, points: list[tuple[float, float]]) -> None:
    """A left drag through (row, column) points of the shown plane, at a hand's pace."""
    target = view.viewport()

    def send(kind, rc, button, buttons):
        p = view.mapFromScene(view.vb.mapViewToScene(view.view_point(*rc)))
        QApplication.sendEvent(target, QMouseEvent(kind, QPointF(p), QPointF(target.mapToGlobal(p)), button, buttons,
                                                   Qt.KeyboardModifier.NoModifier))

    send(QEvent.Type.MouseButtonPress, points[0], Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    for rc in points[1:]:
        QApplication.processEvents()
        time.sleep(0.015)
        send(QEvent.Type.MouseMove, rc, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)


def main() -> int:
    os.environ["UNETGUI_DATA"] = tempfile.mkdtemp(prefix="unetgui-shots-")
    from unetgui.app import RESOURCES, create_app
    from unetgui.ui.main_window import MainWindow

    app = create_app([])
    window = MainWindow(resources=str(RESOURCES))
    window.resize(1600, 1000)
    window.move(0, 0)
    window.show()
    s, view = window.session, window.view

    def correct_sagittally() -> None:
        view.set_plane("sagittal")
        liver = (s.labels.labels == 1).sum(axis=(0, 1))
        s.set_index(int(liver.argmax()))
        window.tools.tool = "brush"
        window.tools.brush_size = 6
        rows = s.volume.shape[0]
        # a stroke down the plane's structure, as a user adds what the model missed at its lower edge
        z = [r for r in range(rows) if (s.labels.labels[r, :, s.index] == 1).any()]
        lo, hi = (min(z), max(z)) if z else (rows // 3, 2 * rows // 3)
        points = []
        for r in range(lo, hi + 1):
            ys = (s.labels.labels[r, :, s.index] == 1).nonzero()[0]
            points.append((r, int(ys.max()) + 2 if ys.size else s.volume.shape[1] // 2))
        drag(view, points)
        window.tools.set_overlay(opacity=0.45)
        view.setFocus()

    def mark() -> None:  # the stroke marked the plane reviewed; the status bar shows the voxel under the cursor
        assert s.reviewed_sagittal[s.index]
        view._on_mouse_moved(view.mapToScene(view.viewport().rect().center()))

    def when(ready, then) -> None:
        """Run ``then`` once ``ready()`` holds (checked every 200 ms)."""
        QTimer.singleShot(200, lambda: then() if ready() else when(ready, then))

    def segmented() -> bool:
        return s.is_open and s.uncertainty is not None and not window.models.busy_segmenting

    def after_segmentation() -> None:
        correct_sagittally()
        QTimer.singleShot(800, lambda: (mark(), QTimer.singleShot(800, sagittal_shot)))

    def sagittal_shot() -> None:
        shoot(window, "sagittal_editing.png")
        view.set_plane("coronal")
        s.set_index(s.volume.shape[1] // 2 - 10)
        QTimer.singleShot(800, lambda: (shoot(window, "coronal_editing.png"), app.quit()))

    window.open_sample()
    when(lambda: s.is_open and window.models.checkpoint is not None and not window.runner.busy,
         lambda: (window.models.segment(), when(segmented, after_segmentation)))
    QTimer.singleShot(90_000, app.quit)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
