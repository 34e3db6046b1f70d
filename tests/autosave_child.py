"""Child process for the crash test: opens a project, paints strokes forever through the real Session +
Autosaver, prints the number of each finished stroke; the test kills it with SIGKILL."""

from __future__ import annotations

import sys
import time

import numpy as np

from unetgui.core.session import BrushSettings, Session
from unetgui.project.autosave import Autosaver
from unetgui.project.store import Project


def stroke(session: Session, k: int) -> None:
    """Stroke ``k``: deterministic slice, position, size, brush, background brush or eraser."""
    rng = np.random.default_rng(k)
    z, n, h, w = int(rng.integers(0, session.volume.shape[0])), 0, *session.volume.shape[1:]
    session.set_slice(z)
    session.begin_stroke()
    brush = BrushSettings(radius=float(rng.integers(2, 9)), erase=bool(k % 5 == 4), background=bool(k % 5 == 2))
    y, x = rng.uniform(0, h), rng.uniform(0, w)
    for n in range(int(rng.integers(3, 8))):
        ny, nx = np.clip(y + rng.normal(0, 6), 0, h - 1), np.clip(x + rng.normal(0, 6), 0, w - 1)
        session.paint_segment(y, x, ny, nx, brush)
        y, x = ny, nx
    session.end_stroke()


def open_series(root: str) -> tuple[Session, Autosaver]:
    project = Project.open(root)
    entry = project.series[0]
    volume = project.load_image(entry)
    saved = project.load_labels(entry.id)
    session = Session()
    if saved is None:
        session.open(volume)
    else:
        session.open(volume, saved_map(volume, saved, project), reviewed=saved.reviewed, test=saved.test,
                     annotated=saved.annotated)
    return session, Autosaver(session, project, entry.id)


def saved_map(volume, saved, project):
    from unetgui.core.volume import LabelMap

    return LabelMap(saved.labels, volume.affine.copy(), project.table)


if __name__ == "__main__":
    session, autosaver = open_series(sys.argv[1])
    autosaver.project.lock()
    k = 0
    while True:
        stroke(session, k)
        print(k, flush=True)
        k += 1
        time.sleep(0.002)
