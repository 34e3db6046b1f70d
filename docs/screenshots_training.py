"""Screenshots of segment -> correct -> retrain in the real window (run under Xvfb):

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/screenshots_training.py

Opens the dcmqi CT with its DICOM-SEG liver, keeps slices 1 and 3 as the reviewed training data, trains with
the panel as it opens (the planner's defaults, 3 minutes; screenshot of the live curves after ~70 s), lets it
re-segment slice 2, corrects that prediction with a brush stroke (screenshot of the corrected overlay).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from PySide6.QtCore import QTimer

from screenshots import DATA, open_window, shoot
from unetgui.core.session import BrushSettings


def main() -> int:
    app, window, series = open_window()
    panel = window.training_panel

    def prepare() -> None:
        s = window.session
        s.set_slice(1)  # slice 2 is the one the model has to find: erase its liver, leave it unreviewed
        s.paint_segment(256, 0, 256, 511, BrushSettings(radius=400, erase=True))
        s.end_stroke()
        s.set_reviewed(1, False)
        s.set_reviewed(0)
        s.set_reviewed(2)
        s.set_slice(1)
        panel.train_button.click()  # the panel as it opens: the planner's defaults, a 3-minute budget

    def when_trained() -> None:
        if window.models.training or window.models.busy_segmenting or window.models.checkpoint is None:
            QTimer.singleShot(1000, when_trained)
            return
        s = window.session
        s.set_slice(1)
        ys, xs = np.nonzero(s.labels.labels[1] == 1)
        if ys.size:  # a correction along the left edge with the threshold brush (liver HU 40..200)
            rows = range(int(np.percentile(ys, 20)), int(np.percentile(ys, 80)), 6)
            edge = [(y, int(xs[ys == y].min())) for y in rows if (ys == y).any()]
            for (y0, x0), (y1, x1) in zip(edge, edge[1:]):
                s.paint_segment(y0, x0, y1, x1, BrushSettings(radius=7, threshold=(40, 200)))
            s.end_stroke()
            s.set_reviewed(1)
        QTimer.singleShot(800, lambda: (shoot(window, "corrected_overlay.png"), app.quit()))

    steps = [
        (1500, lambda: window.io.load_series(series)),
        (3500, lambda: window.io.open_labels(str(DATA / "seg" / "liver_seg.dcm"))),
        (5500, prepare),
        (75000, lambda: shoot(window, "training_live.png")),
        (76000, when_trained),
    ]
    for delay, step in steps:
        QTimer.singleShot(delay, step)
    start = time.monotonic()
    code = app.exec()
    print(f"done in {time.monotonic() - start:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
