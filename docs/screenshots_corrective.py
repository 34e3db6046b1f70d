"""Screenshots of corrective annotation: the user's annotation told apart from the model's prediction (run
under Xvfb):

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/screenshots_corrective.py

Opens the 20-slice TotalSegmentator CT from ../shared/data as a new project (a throwaway data folder keeps the
user's own projects out of it), puts a liver "prediction" on slice 11 (soft tissue of liver density grown from
the liver, as a model that also marks part of the stomach proposes it), then corrects it as a user would
(through the session's stroke API, as the mouse does): a foreground stroke adds the liver's missed posterior
part, a background-brush stroke says "not liver" over the stomach. Saves, at the laptop size:

- docs/images/corrective_both.png: annotation solid, prediction lighter and outlined, background annotated dark;
- docs/images/corrective_annotation.png: the annotation only ("Show: Annotation only", A);
- docs/images/corrective_prediction.png: the prediction only.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from shots import grab, later, wait_for  # docs/shots.py (the script's folder is on the path)

CT = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalsegmentator-example-ct-dicom"
OUT = Path(__file__).resolve().parent / "images"
SLICE = 10


def liver_prediction(hu: np.ndarray) -> np.ndarray:
    """A plausible model proposal on an axial slice: tissue of 70..200 HU (smoothed, opened), the connected
    parts of liver size: the liver without its darker posterior part, and a piece of the stomach's wall."""
    smooth = cv2.GaussianBlur(hu.astype(np.float32), (0, 0), 2)
    tissue = ((smooth > 70) & (smooth < 200)).astype(np.uint8)
    mask = cv2.morphologyEx(tissue, cv2.MORPH_OPEN, np.ones((9, 9), np.uint8))
    n, parts, stats, centres = cv2.connectedComponentsWithStats(mask)
    order = [i for i in np.argsort(-stats[:, cv2.CC_STAT_AREA]) if i != 0]
    liver = order[0]  # the largest: the liver
    wrong = min(order[1:5], key=lambda i: np.hypot(*(centres[i] - (310, 274))))  # the stomach's, beside it
    return np.isin(parts, (liver, wrong)).astype(np.uint8), parts == wrong


def main() -> int:
    os.environ["UNETGUI_DATA"] = tempfile.mkdtemp(prefix="unetgui-shots-")
    from unetgui.app import RESOURCES, create_app
    from unetgui.core.session import BrushSettings
    from unetgui.formats.dicom import scan
    from unetgui.ui.main_window import MainWindow

    app = create_app([])
    window = MainWindow(resources=str(RESOURCES))
    window.move(0, 0)
    window.show()
    OUT.mkdir(exist_ok=True)
    s, tools = window.session, window.tools

    def shoot(name: str) -> None:
        path = OUT / f"corrective_{name}.png"
        grab(window, path)
        print(f"saved {path} (window {window.width()} x {window.height()})")

    def open_ct() -> None:
        (series,) = scan(str(CT)).series
        window.io.load_series(series)
        wait_for(lambda: asked() or opened(), lambda: answer() if asked() else correct())

    def asked() -> bool:  # a project already open asks where the study goes
        return window.projects.question is not None and window.projects.question.isVisible()

    def opened() -> bool:
        return s.is_open and s.volume.shape[0] == 20 and not window.runner.busy

    def answer() -> None:
        window.projects.answers["new"].click()
        wait_for(opened, correct)

    def correct() -> None:
        s.set_slice(SLICE)
        s.update_label(dataclasses.replace(s.table.get(1), name="Liver"))
        prediction, stomach = liver_prediction(s.volume.voxels[SLICE])
        s.apply_prediction([SLICE], prediction[None])
        # the foreground stroke: the liver's posterior part the model missed, from inside its proposal
        s.begin_stroke("brush")
        for (r0, c0), (r1, c1) in zip(((300, 150), (330, 135), (355, 150)), ((330, 135), (355, 150), (365, 185))):
            s.paint_segment(r0, c0, r1, c1, BrushSettings(radius=9))
        s.end_stroke()
        # the background brush: "not liver" across the stomach the model marked
        rows, cols = np.nonzero(stomach)
        top, bottom = int(rows.min()), int(rows.max())
        centre = int(np.median(cols))
        s.begin_stroke("background")
        s.paint_segment(top + 2, centre - 6, bottom - 2, centre + 4, BrushSettings(radius=9, background=True))
        s.end_stroke()
        tools.tool = "background"
        window.set_three_planes(False)  # the one large axial view (a laptop opens a CT in three planes)
        view = window.view
        view.zoom_to((slice(SLICE, SLICE + 1), slice(150, 420), slice(70, 440)), margin_mm=5)
        later(600, both)

    def both() -> None:
        shoot("both")
        tools.set_overlay(display="annotation")
        later(400, annotation)

    def annotation() -> None:
        shoot("annotation")
        tools.set_overlay(display="prediction")
        later(400, prediction)

    def prediction() -> None:
        shoot("prediction")
        tools.set_overlay(display="both")
        app.quit()

    later(1200, open_ct)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
