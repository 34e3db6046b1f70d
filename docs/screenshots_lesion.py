"""Screenshot of a lesion annotated on two thick slices, with slices marked "nothing here" (X) on the slider.

    QT_QPA_PLATFORM=offscreen python docs/screenshots_lesion.py      (or under xvfb-run, as docs/screenshots.py)

Opens the `lesion` development case of benchmarks/dev_cases.py (synthetic FLAIR-like brain MR, 6.4 mm slices,
seed 0) in the real window, draws its lesion on two slices as a user would have (the case's truth on them, marked
reviewed), presses X on three slices at the ends of the volume, and saves docs/images/nothing_here.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from dev_cases import lesion  # noqa: E402

from unetgui.app import create_app  # noqa: E402
from unetgui.core.volume import Volume  # noqa: E402
from unetgui.ui.main_window import MainWindow  # noqa: E402


def main() -> int:
    case = lesion(0)
    app = create_app([])
    window = MainWindow()
    window.resize(1600, 1000)
    window.show()
    sy, sx = case.spacing_yx
    affine = np.diag([-sx, -sy, case.spacing_z, 1.0])  # LPS-stored rows and columns, as a DICOM series gives
    window.session.open(Volume(case.image, affine, "MR"))
    for z in case.annotated:
        window.session.labels.labels[z] = case.truth[z]
        window.session.set_reviewed(z)

    def mark(z: int) -> None:
        window.session.set_slice(z)
        QTest.keyClick(window.view, Qt.Key.Key_X)

    steps = [*(lambda z=z: mark(z) for z in (0, 1, case.image.shape[0] - 1)),
             lambda: window.session.set_slice(case.annotated[0]),
             lambda: window.view.fit(),
             lambda: window.grab().save(str(ROOT / "docs" / "images" / "nothing_here.png")),
             app.quit]
    for i, step in enumerate(steps):
        QTimer.singleShot(400 + 300 * i, step)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
