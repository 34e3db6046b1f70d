"""Measurements drawn on the slice view: RECIST calipers, the long and the short axis of the lesion (piece) a user
picked in the statistics dock's Pieces tab, drawn on its slice with their lengths; and the ruler (D), a distance the
user draws on any plane.

The measurement to show is :attr:`ToolState.calipers` (one for all views; the statistics dock sets it when a piece
is clicked and clears it when the labels change, since it no longer matches them). Each slice view draws it when it
shows the array's slice axis at the measured slice. The ruler is :attr:`ToolState.ruler`, drawn on the plane it was
measured on (any of the three); a click with the ruler, or another image, takes it away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from unetgui.core.statistics import Axes

COLOR = (255, 235, 0)  # calipers' yellow, unlike the crosshair's blue
SHADOW = (0, 0, 0, 170)
RULER_COLOR = (120, 255, 160)  # the ruler's green: a measurement of the user's, unlike a lesion's calipers


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


@dataclass(frozen=True)
class Ruler:
    """A distance a user measured with the ruler (D): on plane ``index`` along array ``axis``, from ``start`` to
    ``end``, each (row, column) of that plane's section (continuous: a pixel's centre is whole)."""

    axis: int
    index: int
    start: tuple[float, float]
    end: tuple[float, float]

    def voxels(self) -> list[tuple[float, float, float]]:
        """The two ends as (z, y, x) voxel coordinates."""
        out = []
        for row, col in (self.start, self.end):
            zyx = [row, col]
            zyx.insert(self.axis, float(self.index))
            out.append(tuple(zyx))
        return out

    def length_mm(self, affine) -> float:
        """The distance in world mm (the grid's spacing and direction: right for oblique and anisotropic grids)."""
        a = np.asarray(affine, float)[:3, :3]
        (z0, y0, x0), (z1, y1, x1) = self.voxels()
        return float(np.linalg.norm(a @ (x1 - x0, y1 - y0, z1 - z0)))


class RulerLine:
    """The ruler's line and its length in one slice view, shown on the plane it was drawn on."""

    def __init__(self, view) -> None:
        self.view = view
        self.shadow = pg.PlotCurveItem(pen=pg.mkPen(SHADOW, width=4))
        self.line = pg.PlotCurveItem(pen=pg.mkPen(RULER_COLOR, width=2))
        self.text = pg.TextItem(color=RULER_COLOR, anchor=(0, 0.5), fill=pg.mkBrush(SHADOW))
        self.shadow.setZValue(20.5)
        for item in (self.line, self.text):
            item.setZValue(21)
        for item in (self.shadow, self.line, self.text):
            item.setVisible(False)
            view.vb.addItem(item, ignoreBounds=True)

    @property
    def shown(self) -> bool:
        return self.line.isVisible()

    def update(self) -> None:
        ruler, view = self.view.tools.ruler, self.view
        show = (ruler is not None and view.session.is_open and view.live and view.axis == ruler.axis
                and view.index == ruler.index)
        if show:
            points = [view.view_point(row, col) for row, col in (ruler.start, ruler.end)]
            for item in (self.line, self.shadow):
                item.setData([p.x() for p in points], [p.y() for p in points])
            self.text.setText(f"{ruler.length_mm(view.session.volume.affine):.1f} mm")
            self.text.setPos(max(points, key=lambda p: p.x()))
        for item in (self.shadow, self.line, self.text):
            item.setVisible(show)
