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


class _LengthLine:
    """A measured line in one slice view, with its length in mm beside its right-hand end (off the structure), on a
    dark edge under the line and the text: they read on bright bone and on a label's fill alike."""

    def __init__(self, view, color: tuple[int, int, int], dashed: bool = False) -> None:
        self.view = view
        style = Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
        self.shadow = pg.PlotCurveItem(pen=pg.mkPen(SHADOW, width=4))
        self.line = pg.PlotCurveItem(pen=pg.mkPen(color, width=2, style=style))
        self.text = pg.TextItem(color=color, anchor=(0, 0.5), fill=pg.mkBrush(SHADOW))
        self.shadow.setZValue(20.5)
        self.line.setZValue(21)
        self.text.setZValue(21)
        self.set_visible(False)
        for item in (self.shadow, self.line, self.text):
            view.vb.addItem(item, ignoreBounds=True)

    def place(self, ends, mm: float) -> None:
        """``ends``: the two ends as (row, column) of the view's section."""
        points = [self.view.view_point(row, col) for row, col in ends]
        for item in (self.line, self.shadow):
            item.setData([p.x() for p in points], [p.y() for p in points])
        self.text.setText(f"{mm:.1f} mm")
        self.text.setPos(max(points, key=lambda p: p.x()))

    def set_visible(self, show: bool) -> None:
        for item in (self.shadow, self.line, self.text):
            item.setVisible(show)


class Calipers:
    """The two lines and their lengths in one slice view (``view``: a SliceView)."""

    def __init__(self, view) -> None:
        self.view = view
        self.marks = [_LengthLine(view, COLOR), _LengthLine(view, COLOR, dashed=True)]  # long, short

    @property
    def lines(self) -> list:
        return [m.line for m in self.marks]

    @property
    def texts(self) -> list:
        return [m.text for m in self.marks]

    @property
    def shown(self) -> bool:
        return self.marks[0].line.isVisible()

    def update(self) -> None:
        """Shown when the view shows the measured slice; placed through the view's display transform."""
        m = self.view.tools.calipers
        view = self.view
        show = (m is not None and view.session.is_open and view.live and view.axis == 0
                and view.index == m.axes.slice)
        if show:
            for mark, ends, mm in zip(self.marks, (m.axes.long, m.axes.short), (m.long_mm, m.short_mm)):
                mark.place([(y, x) for x, y in ends], mm)  # (x, y) pixels: row y, column x
        for mark in self.marks:
            mark.set_visible(show)


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
        self.mark = _LengthLine(view, RULER_COLOR)

    @property
    def text(self):
        return self.mark.text

    @property
    def shown(self) -> bool:
        return self.mark.line.isVisible()

    def update(self) -> None:
        ruler, view = self.view.tools.ruler, self.view
        show = (ruler is not None and view.session.is_open and view.live and view.axis == ruler.axis
                and view.index == ruler.index)
        if show:
            self.mark.place((ruler.start, ruler.end), ruler.length_mm(view.session.volume.affine))
        self.mark.set_visible(show)
