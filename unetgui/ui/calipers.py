"""RECIST calipers on the slice view: the long and the short axis of the lesion (piece) a user picked in the
statistics dock's Pieces tab, drawn on its slice with their lengths, as a radiologist's measurement.

The measurement to show is :attr:`ToolState.calipers` (one for all views; the statistics dock sets it when a piece
is clicked and clears it when the labels change, since it no longer matches them). Each slice view draws it when it
shows the array's slice axis at the measured slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import Qt

from unetgui.core.statistics import Axes

COLOR = (255, 235, 0)  # calipers' yellow, unlike the crosshair's blue
SHADOW = (0, 0, 0, 170)


@dataclass(frozen=True)
class Measurement:
    """What the calipers show: where the axes lie and their lengths in mm."""

    axes: Axes
    long_mm: float
    short_mm: float


class Calipers:
    """The two lines and their lengths in one slice view (``view``: a SliceView)."""

    def __init__(self, view) -> None:
        self.view = view
        self.lines = [pg.PlotCurveItem(pen=pg.mkPen(COLOR, width=2)),
                      pg.PlotCurveItem(pen=pg.mkPen(COLOR, width=2, style=Qt.PenStyle.DashLine))]
        # a dark edge under each line and text: they read on bright bone and on a label's fill alike
        self.shadows = [pg.PlotCurveItem(pen=pg.mkPen(SHADOW, width=4)) for _ in self.lines]
        self.texts = [pg.TextItem(color=COLOR, anchor=(0, 0.5), fill=pg.mkBrush(SHADOW)) for _ in self.lines]
        for z, item in ((20.5, s) for s in self.shadows):
            item.setZValue(z)
        for item in (*self.lines, *self.texts):
            item.setZValue(21)
        for item in self._items():
            item.setVisible(False)
            view.vb.addItem(item, ignoreBounds=True)

    def _items(self) -> tuple:
        return (*self.shadows, *self.lines, *self.texts)

    @property
    def shown(self) -> bool:
        return self.lines[0].isVisible()

    def update(self) -> None:
        """Shown when the view shows the measured slice; placed through the view's display transform."""
        m = self.view.tools.calipers
        view = self.view
        show = (m is not None and view.session.is_open and view.live and view.axis == 0
                and view.index == m.axes.slice)
        if show:
            for line, shadow, text, ends, mm in zip(self.lines, self.shadows, self.texts, (m.axes.long, m.axes.short),
                                                    (m.long_mm, m.short_mm)):
                points = [view.view_point(y, x) for x, y in ends]  # (x, y) pixels: row y, column x
                for item in (line, shadow):
                    item.setData([p.x() for p in points], [p.y() for p in points])
                text.setText(f"{mm:.1f} mm")
                text.setPos(max(points, key=lambda p: p.x()))  # right of the right-hand end: off the lesion
        for item in self._items():
            item.setVisible(show)
