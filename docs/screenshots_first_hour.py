"""Screenshots of the first hour in the window at a laptop's and a desktop's screen size (run under Xvfb):

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/screenshots_first_hour.py 1280x800
    xvfb-run -a -s "-screen 0 1920x1080x24" python docs/screenshots_first_hour.py 1920x1080

The window opens as the app opens it (sized to the screen). Shots, each named with the size: the welcome;
the sample after a short training (the summary that stays); the 20-slice TotalSegmentator CT from
../shared/data opened as a new project, in the three-plane layout with the crosshair moved by a click; the
export dialog. Each step also prints the buttons whose text is cut or clipped (none expected).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QAbstractButton, QApplication

from unetgui.app import RESOURCES, create_app
from unetgui.formats.dicom import scan
from unetgui.ui.main_window import MainWindow

from shots import grab, later, wait_for  # docs/shots.py (the script's folder is on the path)

CT = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalsegmentator-example-ct-dicom"
OUT = Path(__file__).resolve().parent / "images"


def cut_buttons(window) -> list[str]:
    """Visible buttons whose text is wider than the button (less a 12 px frame) or that a panel clips."""
    cut = []
    for button in window.findChildren(QAbstractButton):
        text = button.text().replace("&", "")
        if not text or not button.isVisible() or button.visibleRegion().isEmpty():
            continue
        if button.fontMetrics().horizontalAdvance(text) + 12 > button.width() or \
                button.visibleRegion().boundingRect().width() < button.width():
            cut.append(text)
    return cut


def main() -> int:
    size = sys.argv[1] if len(sys.argv) > 1 else "1600x1000"
    app = create_app([])
    window = MainWindow(resources=str(RESOURCES))
    window.move(0, 0)
    window.show()
    OUT.mkdir(exist_ok=True)

    def shoot(name: str) -> None:
        path = OUT / f"first_hour_{name}_{size}.png"
        grab(window, path)
        print(f"{path.name}: window {window.width()} x {window.height()}, cut buttons: {cut_buttons(window) or 'none'}")

    def welcome() -> None:
        shoot("welcome")
        window.open_sample()
        wait_for(lambda: window.session.is_open and window.models.checkpoint is not None and not window.runner.busy,
                 train)

    def train() -> None:
        window.training_panel.minutes.setValue(0.25)  # a short run: the shot is about the summary it leaves
        window.training_panel.train_button.click()
        later(2000, lambda: wait_for(lambda: not window.models.training and not window.runner.busy, trained))

    def trained() -> None:
        later(500, lambda: (shoot("training_finished"), open_ct()))

    def open_ct() -> None:
        (series,) = scan(str(CT)).series
        window.io.load_series(series)
        wait_for(lambda: window.projects.question is not None and window.projects.question.isVisible(), answer)

    def answer() -> None:
        window.projects.answers["new"].click()  # the sample's project does not take a user's study
        wait_for(lambda: window.session.is_open and window.session.volume.shape[0] == 20 and not window.runner.busy,
                 three_planes)

    def three_planes() -> None:
        window.set_three_planes(True)
        later(500, click)

    def click() -> None:
        view = window.planes.views[0]
        point = view.mapFromScene(view.vb.mapViewToScene(view.view_point(300, 330)))  # on the liver
        for kind in (QMouseEvent.Type.MouseButtonPress, QMouseEvent.Type.MouseButtonRelease):
            QApplication.sendEvent(view.viewport(), QMouseEvent(
                kind, QPointF(point), QPointF(view.viewport().mapToGlobal(QPoint(point))), Qt.MouseButton.LeftButton,
                Qt.MouseButton.LeftButton if kind == QMouseEvent.Type.MouseButtonPress else Qt.MouseButton.NoButton,
                Qt.KeyboardModifier.NoModifier))
        later(700, lambda: (shoot("ct_three_planes"), export()))

    def export() -> None:
        window.show_export()
        later(800, lambda: (shoot("export"), window.export_dialog.close(), app.quit()))

    later(1500, welcome)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
