"""Viewer latency at 512 x 512 with a label overlay: slice change -> repainted view, and mouse move ->
painted dab on screen; in the linked three-plane layout, a crosshair move (a Navigate click) -> all three views
repainted. Runs the real views offscreen (or on a display) and forces a synchronous repaint.

Usage: QT_QPA_PLATFORM=offscreen python benchmarks/viewer_latency.py [--slices 300]
Goal (issue 4): <= 16 ms each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication

    from unetgui.core.session import BrushSettings, Session
    from unetgui.core.volume import LabelMap, LabelTable, Volume
    from unetgui.ui.slice_view import SliceView
    from unetgui.ui.tool_state import ToolState

    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    voxels = rng.integers(-1000, 1500, (args.slices, 512, 512), dtype=np.int16)
    labels = np.zeros(voxels.shape, np.uint8)
    labels[:, 100:400, 120:380] = 1
    labels[:, 200:260, 200:300] = 2
    session = Session()
    session.open(Volume(voxels, np.diag([0.8, 0.8, 2.0, 1.0]), "CT"), LabelMap(labels, np.diag([0.8, 0.8, 2.0, 1.0]),
                 LabelTable.from_names("liver", "tumour")))
    tools = ToolState()
    view = SliceView(session, tools)
    view.resize(1000, 900)
    view.show()
    app.processEvents()

    def repaint() -> None:
        view.viewport().repaint()  # synchronous paint of the whole scene

    slice_times = []
    for i in range(args.repeat):
        t = time.perf_counter()
        session.set_slice((session.current_slice + 1) % args.slices)
        repaint()
        slice_times.append(time.perf_counter() - t)
    brush = BrushSettings(radius=8)
    dab_times = []
    session.begin_stroke()
    for i in range(args.repeat):
        y, x = 150 + (i % 200), 150 + (i * 3) % 200
        t = time.perf_counter()
        point = QPointF((x + 0.5) * 0.8, (y + 0.5) * 0.8)
        view._on_mouse_moved(view.vb.mapViewToScene(point))  # cursor circle and status
        session.paint_segment(y, x, y + 1, x + 2, brush)
        repaint()
        dab_times.append(time.perf_counter() - t)
    session.end_stroke()

    def describe(times: list[float]) -> str:
        ms = sorted(1000 * t for t in times)
        return f"median {statistics.median(ms):5.1f} ms, 95th percentile {ms[int(0.95 * len(ms))]:5.1f} ms"

    print(f"512 x 512, int16 CT with a 2-label overlay, {os.environ.get('QT_QPA_PLATFORM')} platform:")
    print(f"  slice change -> repainted view: {describe(slice_times)}  (goal <= 16 ms)")
    print(f"  mouse move -> painted dab:      {describe(dab_times)}  (goal <= 16 ms)")
    tools.set_overlay(outline=True)
    outline_times = []
    for i in range(args.repeat // 2):
        t = time.perf_counter()
        session.set_slice((session.current_slice + 1) % args.slices)
        repaint()
        outline_times.append(time.perf_counter() - t)
    print(f"  slice change, outline overlay:  {describe(outline_times)}")
    tools.set_overlay(outline=False)
    view.hide()
    view.set_live(False)
    from unetgui.ui.plane_views import ThreePlaneView

    planes = ThreePlaneView(session, tools)
    planes.resize(1000, 900)
    planes.show()
    app.processEvents()
    cross_times, scroll_times = [], []
    for i in range(args.repeat // 2):
        y, x = 100 + (i * 13) % 300, 100 + (i * 17) % 300
        t = time.perf_counter()
        session.set_position([session.position[0], y, x])  # a click in the axial view: the other two planes move
        for v in planes.views:
            v.viewport().repaint()
        cross_times.append(time.perf_counter() - t)
    for i in range(args.repeat // 2):
        t = time.perf_counter()
        session.set_index((session.index + 1) % args.slices)  # the wheel in the edited (axial) view
        for v in planes.views:
            v.viewport().repaint()
        scroll_times.append(time.perf_counter() - t)
    print(f"  three planes, crosshair move -> 3 views repainted: {describe(cross_times)}")
    print(f"  three planes, slice change -> 3 views repainted:   {describe(scroll_times)}")


if __name__ == "__main__":
    main()
