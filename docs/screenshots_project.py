"""Screenshots of the first run: the welcome panel, the sample study segmented, the uncertainty heat-map
on the suggested slice (N, U), the export dialog.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/screenshots_project.py

Settings and the sample copy go to a temp folder (the user's own settings are not touched).
"""

from __future__ import annotations

import os
import sys
import tempfile

from PySide6.QtCore import QSettings, QTimer

from screenshots import OUT, shoot  # noqa: F401 - same capture as the other screenshots

from unetgui.app import RESOURCES, create_app
from unetgui.ui.main_window import MainWindow


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="unetgui-shots-")
    os.environ["UNETGUI_DATA"] = tmp
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp)
    app = create_app([])
    window = MainWindow(resources=str(RESOURCES))
    window.resize(1600, 1000)
    window.move(0, 0)
    window.show()

    def when(condition, then, every=200):
        def poll():
            if condition():
                then()
            else:
                QTimer.singleShot(every, poll)
        QTimer.singleShot(every, poll)

    def segmented():
        window.session.set_slice(14)
        window.view.set_window(400, 40)
        QTimer.singleShot(800, lambda: (shoot(window, "sample_segmented.png"), uncertain()))

    def uncertain():
        window.actions.next_suggestion.trigger()  # N: the top-ranked slice
        window.actions.uncertainty.trigger()  # U: the heat-map
        QTimer.singleShot(800, lambda: (shoot(window, "uncertainty.png"), window.actions.uncertainty.trigger(), export()))

    def export():
        window.show_export()
        dialog = window.export_dialog
        dialog.folder.setText(os.path.join(tmp, "export"))
        dialog.overlay_png.setChecked(True)
        dialog.move(480, 260)
        dialog.start()
        when(lambda: dialog.job is None, lambda: QTimer.singleShot(600, lambda: (shoot(window, "export_dialog.png"), app.quit())))

    def opened():
        window.models.segment_done.connect(lambda _: QTimer.singleShot(300, segmented))
        window.models.segment()

    window.projects.ready.connect(lambda: when(lambda: window.models.checkpoint is not None, opened))
    QTimer.singleShot(1500, lambda: (shoot(window, "welcome.png"), window.open_sample()))
    return app.exec()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    sys.exit(main())
