"""The slice view: image + label overlay of one plane, painting, window/level, zoom and pan.

The overlay tells the user's annotation from the model's prediction (view_overlays.overlay_rgba): annotated
voxels (strokes, reviewed planes) are a solid fill, the prediction a lighter fill with an outline, background
the background brush annotated a dark shade; ``ToolState.display`` shows both or either alone.

Mouse: left paints with the active tool (navigate: a click moves the crosshair, a drag pans), right-drag
sets window/level, middle-drag pans, wheel changes slice, Ctrl+wheel zooms. Pixels are shown at their
physical size (mm) so the aspect ratio is right. Every plane (axial, coronal, sagittal) is edited the same
way: the session holds which plane is edited and the position (``Session.axis``, ``Session.position``); a
view shows the session's plane, or one fixed plane (the linked three-plane layout, where a click or stroke
makes the view's plane the edited one). Orientation letters (from the affine), the plane's number and
position and the window/level are drawn on the image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem

from unetgui.core.geometry import display_transform, plane_names, voxel_to_world
from unetgui.core.session import AXES, BrushSettings, Session, plane_of
from unetgui.core.volume import UNANNOTATED
from unetgui.ui.calipers import Calipers, Ruler, RulerLine
from unetgui.ui.tool_state import ToolState
from unetgui.ui.view_overlays import (HEAT_LUT, PlaneText, UncertaintyLegend, direction_letter, overlay_lut,
                                      overlay_rgba, stipple)

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

PLANES = AXES
PAINT_TOOLS = ("brush", "background", "eraser")  # the tools that paint strokes (fill paints with a click)


class _ViewBox(pg.ViewBox):
    """Routes mouse gestures to the SliceView instead of pyqtgraph's default pan/zoom."""

    def __init__(self, view: SliceView) -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False)
        self._view = view

    def wheelEvent(self, ev, axis=None):  # noqa: N802 (Qt naming)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
        else:
            self._view.step_slice(1 if ev.delta() > 0 else -1)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        button = ev.button()
        if button == Qt.MouseButton.RightButton:
            self._view.window_drag(ev)
        elif button == Qt.MouseButton.LeftButton and self._view.measuring():
            self._view.ruler_drag(ev)
        elif button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and not self._view.can_paint()):
            self.setMouseEnabled(True, True)
            ev_button = ev.button
            ev.button = lambda: Qt.MouseButton.LeftButton  # pyqtgraph pans on a left drag
            super().mouseDragEvent(ev, axis)
            ev.button = ev_button
        elif button == Qt.MouseButton.LeftButton:
            self._view.paint_drag(ev)
        ev.accept()

    def mouseClickEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            self._view.click(ev)
        ev.accept()


class SliceView(pg.GraphicsLayoutWidget):
    """Shows ``session``'s current slice with its labels; edits through the session's methods."""

    hover_changed = Signal(object)  # (z, y, x) voxel under the cursor, or None
    window_changed = Signal(float, float)  # width, level (the tools' window, shared by every view)
    plane_changed = Signal(str)

    def __init__(self, session: Session, tools: ToolState, axis: int | None = None) -> None:
        super().__init__()
        self.session, self.tools = session, tools
        self._axis = axis  # None: the session's plane; 0, 1, 2: always that plane (linked views)
        self.live = True  # False while the view is not in the window's layout: it draws nothing
        # asked before a gesture that paints the active label (brush, fill; drag: True for a drag): False stops
        # the gesture; the window asks the first stroke's label name there. The background brush and the
        # eraser paint no label: they never ask
        self.before_paint: Callable[[bool], bool] | None = None
        self.vb = _ViewBox(self)
        self.addItem(self.vb)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setZValue(10)
        self.heat = pg.ImageItem(axisOrder="row-major")  # the model's uncertainty, above the labels
        self.heat.setZValue(11)
        self.heat.setVisible(False)
        self.vb.addItem(self.image)
        self.vb.addItem(self.overlay)
        self.vb.addItem(self.heat)
        self.legend = UncertaintyLegend(self)
        self._rect: QRectF | None = None  # the displayed plane in view coordinates (mm)
        self.cursor = QGraphicsEllipseItem()
        self.cursor.setPen(QPen(QColor(255, 255, 0, 200), 0))
        self.cursor.setZValue(20)
        self.cursor.setVisible(False)
        self.vb.addItem(self.cursor)
        self.crosshair = [pg.InfiniteLine(angle=a, movable=False, pen=pg.mkPen((80, 200, 255, 170), width=1))
                          for a in (90, 0)]  # vertical, horizontal: the position in the other two planes
        for line in self.crosshair:
            line.setZValue(19)
            line.setVisible(False)
            self.vb.addItem(line, ignoreBounds=True)
        self.show_crosshair = False
        self.calipers = Calipers(self)
        self.ruler = RulerLine(self)
        self.text = PlaneText(self)
        self.letters, self.info, self.levels = self.text.letters, self.text.info, self.text.levels
        self.setBackground("k")
        self._last: tuple[float, float] | None = None
        self._ruler_start: tuple[float, float] | None = None  # where a ruler drag began (row, column)
        self._lut = np.zeros((256, 4), np.uint8)  # each label value's colour, alpha 255 (shown) or 0 (hidden)
        self._overlay_lut = overlay_lut(self._lut, 0.0)  # view_overlays.overlay_lut of the tools' style
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        session.listeners.volume_changed.append(self._on_volume_changed)
        session.listeners.slice_changed.append(lambda index: self._refresh() if self._axis is None else None)
        session.listeners.position_changed.append(self._on_position_changed)
        session.listeners.axis_changed.append(self._on_axis_changed)
        session.listeners.labels_changed.append(self._on_labels_changed)
        session.listeners.reviewed_changed.append(self._refresh_overlay)  # reviewed planes are annotation
        session.listeners.table_changed.append(self._on_overlay_style_changed)
        session.listeners.uncertainty_changed.append(self._refresh_heat)
        tools.overlay_changed.connect(self._on_overlay_style_changed)
        tools.brush_size_changed.connect(lambda _: self._update_cursor())
        tools.tool_changed.connect(lambda _: (self._finish_stroke(), self._update_cursor()))
        tools.window_changed.connect(self._on_window_changed)
        tools.calipers_changed.connect(self._update_measurements)

    @property
    def axis(self) -> int:
        """The axis of the plane shown: the session's, or the view's own."""
        return self.session.axis if self._axis is None else self._axis

    @property
    def index(self) -> int:
        """The shown plane's index along :attr:`axis` (the session's position)."""
        return self.session.position[self.axis]

    @property
    def plane(self) -> str:
        """The plane shown."""
        return PLANES[self.axis]

    @property
    def window(self) -> tuple[float, float]:
        return self.tools.window

    def activate(self) -> None:
        """Make this view's plane the one the session edits (a linked view that is clicked or painted)."""
        if self._axis is not None and self.session.axis != self._axis:
            self.session.set_axis(self._axis)

    # -- geometry --------------------------------------------------------------------------------
    def _display(self) -> tuple[bool, bool, bool]:
        """(transpose, flip rows, flip columns) that put the shown section in radiological convention, from the
        affine (core.geometry.display_transform): an axial CT shows as stored, a RAS NIfTI flipped, the axial
        plane of a sagittal MR transposed."""
        key = (self.session.generation, self.axis)  # one answer per image and plane: asked on every mouse move
        if getattr(self, "_display_key", None) != key:
            self._display_key, self._display_value = key, display_transform(self.session.volume.affine, self.axis)
        return self._display_value

    def _section_shape(self) -> tuple[int, int]:
        rows, cols = (n for k, n in enumerate(self.session.volume.shape) if k != self.axis)
        return rows, cols

    def _plane_spacing(self) -> tuple[float, float]:
        """(row spacing, column spacing) in mm of the displayed plane."""
        spacing = self.session.volume.spacing
        rows, cols = (spacing[k] for k in range(3) if k != self.axis)
        return (cols, rows) if self._display()[0] else (rows, cols)

    def anatomical_plane(self) -> str:
        """The plane's anatomical name ("axial" ...), from the affine: the first plane of a sagittal MR is sagittal."""
        return plane_names(self.session.volume.affine)[self.axis]

    def _section(self, array: np.ndarray) -> np.ndarray:
        return plane_of(array, self.axis, self.index)

    def plane_data(self, array: np.ndarray) -> np.ndarray:
        """The displayed 2-D section of a ``(z, y, x)`` array (see :meth:`_display`)."""
        return self.displayed(self._section(array))

    def displayed(self, out: np.ndarray) -> np.ndarray:
        """A 2-D section of the shown plane (rows, columns of the array) as displayed (see :meth:`_display`)."""
        transpose, flip_rows, flip_cols = self._display()
        if not (transpose or flip_rows or flip_cols):
            return out
        out = out.T if transpose else out
        # a contiguous copy: pyqtgraph renders negative-stride views several times slower
        return np.ascontiguousarray(out[::-1 if flip_rows else 1, ::-1 if flip_cols else 1])

    def _to_array(self, row: float, col: float) -> tuple[float, float]:
        """Displayed (row, col) -> (row, col) of the section (works for fractions too)."""
        h, w = self._section_shape()
        transpose, flip_rows, flip_cols = self._display()
        if transpose:
            h, w = w, h
        row, col = (h - 1 - row if flip_rows else row), (w - 1 - col if flip_cols else col)
        return (col, row) if transpose else (row, col)

    def _to_display(self, row: float, col: float) -> tuple[float, float]:
        """Section (row, col) -> displayed (row, col): the inverse of :meth:`_to_array`."""
        h, w = self._section_shape()
        transpose, flip_rows, flip_cols = self._display()
        if transpose:
            h, w, row, col = w, h, col, row
        return (h - 1 - row if flip_rows else row), (w - 1 - col if flip_cols else col)

    def view_point(self, row: float, col: float) -> QPointF:
        """View coordinates (mm) of the centre of section pixel (row, col): the inverse of :meth:`voxel_at`."""
        dr, dc = self._plane_spacing()
        r, c = self._to_display(row, col)
        return QPointF((c + 0.5) * dc, (r + 0.5) * dr)

    def voxel_at(self, view_point: QPointF) -> tuple[int, int, int] | None:
        """(z, y, x) of the voxel under a point in view coordinates (mm), or None outside the volume."""
        dr, dc = self._plane_spacing()
        row, col = (int(v) for v in self._to_array(np.floor(view_point.y() / dr), np.floor(view_point.x() / dc)))
        zyx = [row, col]
        zyx.insert(self.axis, self.index)
        if not all(0 <= c < n for c, n in zip(zyx, self.session.volume.shape)):
            return None
        return tuple(zyx)

    def _pixel(self, view_point: QPointF) -> tuple[float, float]:
        """Fractional (row, col) of the section under a view point (for painting)."""
        dr, dc = self._plane_spacing()
        return self._to_array(view_point.y() / dr - 0.5, view_point.x() / dc - 0.5)

    # -- state changes ---------------------------------------------------------------------------
    def _finish_stroke(self) -> None:
        """A drag interrupted by a plane or tool change still ends as one undoable, reviewed stroke."""
        if self._last is not None:
            self.session.end_stroke()
            self._last = None

    def set_plane(self, plane: str) -> None:
        """Edit (and show) the anatomical plane ``plane``: "axial" is the plane along array axis 0 of an axial
        CT, but axis 1 of a sagittal MR (core.geometry.plane_names)."""
        names = plane_names(self.session.volume.affine) if self.session.is_open else PLANES
        if plane not in names or names.index(plane) == self.session.axis:
            return
        self._finish_stroke()
        self.session.set_axis(names.index(plane))

    def _on_axis_changed(self, axis: int) -> None:
        self._finish_stroke()
        if self._axis is None:
            self._reset_geometry()
        self.plane_changed.emit(PLANES[axis])

    def _on_position_changed(self, axis: int) -> None:
        if axis == self.axis:
            if self._axis is not None:  # the session's plane is drawn on slice_changed
                self._refresh()
        else:
            self._update_crosshair()

    def set_live(self, live: bool) -> None:
        """Draw (in the layout) or not (hidden: no work on every change); a view that comes back refits."""
        self.live = live
        if live:
            self._reset_geometry()

    def fit(self) -> None:
        """Zoom so that the whole slice fits the view."""
        self._reset_geometry()

    def zoom_to(self, box: tuple[slice, slice, slice], margin_mm: float = 15.0) -> None:
        """Show the part of the plane that a 3-D box (z, y, x slices) covers, with a margin."""
        if not self.session.is_open:
            return
        rows, cols = (box[k] for k in range(3) if k != self.axis)
        a, b = self.view_point(rows.start, cols.start), self.view_point(rows.stop - 1, cols.stop - 1)
        rect = QRectF(a, b).normalized()
        dr, dc = self._plane_spacing()
        self.vb.setRange(rect.adjusted(-margin_mm - dc, -margin_mm - dr, margin_mm + dc, margin_mm + dr), padding=0)

    def set_window(self, width: float, level: float) -> None:
        self.tools.set_window(width, level)

    def _on_window_changed(self, width: float, level: float) -> None:
        self.image.setLevels((level - width / 2, level + width / 2))
        self.text.set_levels(width, level)
        self.window_changed.emit(width, level)

    def auto_window(self) -> None:
        """MR and other non-CT: 1-99 percentiles of the volume; CT: abdomen."""
        volume = self.session.volume
        if volume is None:
            return
        if volume.modality == "CT":
            self.set_window(400, 40)
            return
        sample = volume.voxels[:, ::4, ::4]
        lo, hi = np.percentile(sample, (1, 99))
        self.set_window(max(hi - lo, 1.0), (hi + lo) / 2)

    def step_slice(self, step: int) -> None:
        if self.session.is_open:
            self.activate()  # the wheel over a linked view moves through that view's planes
            self.session.set_index(self.session.index + step)

    def _on_volume_changed(self) -> None:
        self._last = None  # a drag still going when another image opened paints no more (on the new image)
        self.tools.set_ruler(None)  # measured on the last image
        if self._axis is None:  # one window for every view (the tools'): set once, by the view that always exists
            self.auto_window()
        self._reset_geometry()

    def _reset_geometry(self) -> None:
        if not self.session.is_open or not self.live:
            return
        self._refresh()
        h, w = self.image.image.shape
        dr, dc = self._plane_spacing()
        rect = QRectF(0, 0, w * dc, h * dr)
        self.image.setRect(rect)
        if self.overlay.image is not None:  # a hidden overlay is drawn (and placed) when shown
            self.overlay.setRect(rect)
        self._rect = rect
        self._refresh_heat()
        self.vb.setRange(rect, padding=0.02)

    def _on_labels_changed(self, slices: tuple[int, ...], box=None) -> None:
        axis, index = self.axis, self.index
        if axis == 0:
            shown = index in slices
        else:  # whole axial slices cross every coronal and sagittal plane; a box only those it holds
            shown = bool(slices) and (box is None or box[axis].start <= index < box[axis].stop)
        if shown:
            self._refresh_overlay()

    def _on_overlay_style_changed(self) -> None:
        lut = np.zeros((256, 4), np.uint8)
        for label in self.session.table:
            if label.value not in self.tools.hidden_labels:
                lut[label.value] = (*label.color, 255)
        lut[0] = lut[UNANNOTATED] = 0
        self._lut = lut
        tools = self.tools
        self._overlay_lut = overlay_lut(lut, tools.opacity, tools.display, tools.outline)
        self._refresh_overlay()

    # -- drawing ---------------------------------------------------------------------------------
    def _refresh(self) -> None:
        if not self.session.is_open or not self.live:
            return
        w, lv = self.window
        self.image.setImage(self.plane_data(self.session.volume.voxels), autoLevels=False, levels=(lv - w / 2, lv + w / 2))
        self._refresh_overlay()
        self._update_crosshair()
        self._update_measurements()
        self._update_annotations()

    def _update_measurements(self) -> None:
        self.calipers.update()
        self.ruler.update()

    def _update_crosshair(self) -> None:
        """The lines through the position: where the other two planes cut this one."""
        show = self.show_crosshair and self.session.is_open and self.live
        if show:
            rows, cols = (k for k in range(3) if k != self.axis)
            point = self.view_point(self.session.position[rows], self.session.position[cols])
            self.crosshair[0].setPos(point.x())
            self.crosshair[1].setPos(point.y())
        for line in self.crosshair:
            line.setVisible(show)

    def _update_annotations(self) -> None:
        """Orientation letters at the edges (from the affine: right for any acquisition), the plane's number
        and position (world mm along the plane's normal), the window/level."""
        volume = self.session.volume
        a = volume.affine[:3, :3]  # columns: world step of the x, y and z index
        rows, cols = (k for k in range(3) if k != self.axis)
        transpose, flip_rows, flip_cols = self._display()
        down, right = (a[:, 2 - k] for k in ((cols, rows) if transpose else (rows, cols)))
        down, right = down * (-1 if flip_rows else 1), right * (-1 if flip_cols else 1)
        normal = np.cross(a[:, 2 - cols], a[:, 2 - rows])
        k = int(np.argmax(np.abs(normal)))
        world = voxel_to_world(volume.affine, np.asarray(self.session.position))
        self.text.show({"top": direction_letter(-down), "bottom": direction_letter(down),
                        "left": direction_letter(-right), "right": direction_letter(right)},
                       f"{self.anatomical_plane().capitalize()} {self.index + 1} / {volume.shape[self.axis]}   "
                       f"{'RAS'[k]} {world[k]:.1f} mm", self.window)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if hasattr(self, "text"):  # pyqtgraph resizes the view while it is being built
            self.text.place()

    def overlay_planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The shown plane's (labels, truth, annotated background) as displayed: the labels; the voxels that
        are the user's annotation (Session.truth_plane); the voxels the user's strokes annotated outside
        reviewed planes (their 0s are drawn as annotated background: a reviewed plane's are not)."""
        s, axis, index = self.session, self.axis, self.index
        strokes, cover = plane_of(s.annotated, axis, index), s.reviewed_cover(axis, index)
        return self.plane_data(s.labels.labels), self.displayed(strokes | cover), self.displayed(strokes & ~cover)

    def _refresh_overlay(self) -> None:
        if not self.session.is_open or not self.live:
            return
        self.overlay.setVisible(self.tools.overlay_visible)
        if self.tools.overlay_visible:  # hidden: drawn when shown again (overlay_changed)
            labels, truth, marked = self.overlay_planes()
            tools = self.tools
            rgba = overlay_rgba(labels, truth, self._lut, tools.opacity, tools.display, tools.outline, marked,
                                lut=self._overlay_lut)
            self.overlay.setImage(rgba, autoLevels=False, levels=None, lut=None)
            if self._rect is not None:
                self.overlay.setRect(self._rect)
        self._refresh_heat()

    def _refresh_heat(self) -> None:
        """The uncertainty heat-map (toggled with U): transparent where the model is sure."""
        uncertainty = self.session.uncertainty if self.session.is_open else None
        show = self.tools.uncertainty_visible and uncertainty is not None
        self.heat.setVisible(show)
        self.legend.setVisible(show)
        if show:
            self.heat.setImage(stipple(self.plane_data(uncertainty)), autoLevels=False, levels=(0, 255), lut=HEAT_LUT)
            if self._rect is not None:
                self.heat.setRect(self._rect)  # after setImage: an ImageItem scales its rect by the image size

    def _update_cursor(self, view_point: QPointF | None = None) -> None:
        show = self.session.is_open and self.tools.tool in PAINT_TOOLS
        if show:  # the background brush's circle is grey and dashed: it paints no label colour
            background = self.tools.tool == "background"
            pen = QPen(QColor(220, 220, 220, 230) if background else QColor(255, 255, 0, 200), 0)
            pen.setStyle(Qt.PenStyle.DashLine if background else Qt.PenStyle.SolidLine)
            if pen != self.cursor.pen():
                self.cursor.setPen(pen)
        if view_point is not None and show:
            dr, dc = self._plane_spacing()
            r = self.tools.brush_size / 2
            self.cursor.setRect(QRectF(view_point.x() - r * dc, view_point.y() - r * dr, 2 * r * dc, 2 * r * dr))
        self.cursor.setVisible(show and view_point is not None)

    # -- mouse -----------------------------------------------------------------------------------
    def can_paint(self) -> bool:
        return self.session.is_open and self.tools.tool in (*PAINT_TOOLS, "fill")

    def _brush(self) -> BrushSettings:
        return BrushSettings(radius=self.tools.brush_size / 2, erase=self.tools.tool == "eraser",
                             background=self.tools.tool == "background",
                             threshold=self.tools.threshold if self.tools.threshold_enabled else None)

    def _may_paint(self, drag: bool) -> bool:
        """Whether the gesture paints: the brush and fill first ask ``before_paint`` (the first label's name);
        the eraser and the background brush paint no label and never ask."""
        return self.tools.tool in ("eraser", "background") or self.before_paint is None or self.before_paint(drag)

    def _stroke_name(self) -> str:
        """The undo step's name of a stroke of the active tool."""
        return self.tools.tool if self.tools.tool in ("eraser", "background") else "brush"

    def paint_drag(self, ev) -> None:
        if self.tools.tool == "fill" or (not ev.isStart() and self._last is None):
            return  # a drag that lost its stroke (plane or tool changed) paints no more
        point = self.vb.mapToView(ev.pos())
        y, x = self._pixel(point)
        if ev.isStart():
            self.activate()
            if not self._may_paint(drag=True):
                return
            self.session.begin_stroke(self._stroke_name())
            start = self._pixel(self.vb.mapToView(ev.buttonDownPos()))
            self._last = start
        y0, x0 = self._last if self._last is not None else (y, x)
        self.session.paint_segment(y0, x0, y, x, self._brush())
        self._last = (y, x)
        self._update_cursor(point)
        if ev.isFinish():
            self.session.end_stroke()
            self._last = None

    def measuring(self) -> bool:
        return self.session.is_open and self.tools.tool == "ruler"

    def ruler_drag(self, ev) -> None:
        """The ruler (D): a drag measures the distance from where it began to where it is (ui/calipers.py)."""
        if ev.isStart():
            self.activate()
            self._ruler_start = self._pixel(self.vb.mapToView(ev.buttonDownPos()))
        if self._ruler_start is not None:
            end = self._pixel(self.vb.mapToView(ev.pos()))
            self.tools.set_ruler(Ruler(self.axis, self.index, self._ruler_start, end))

    def click(self, ev) -> None:
        if self.measuring():
            self.tools.set_ruler(None)  # a click with the ruler takes the last distance away
            return
        point = self.vb.mapToView(ev.pos())
        voxel = self.voxel_at(point)
        if voxel is None:
            return
        self.activate()
        if not self.can_paint():  # a click meant to look: the crosshair (the other planes) goes there
            self.session.set_position(voxel)
            return
        if not self._may_paint(drag=False):
            return
        if self.tools.tool == "fill":
            row, col = (v for a, v in enumerate(voxel) if a != self.axis)
            self.session.flood_fill(row, col)
            return
        y, x = self._pixel(point)
        self.session.begin_stroke(self._stroke_name())
        self.session.paint_segment(y, x, y, x, self._brush())
        self.session.end_stroke()

    def window_drag(self, ev) -> None:
        delta = ev.pos() - ev.lastPos()
        w, lv = self.window
        scale = max(w, 10.0) / 200.0
        self.set_window(w + delta.x() * scale, lv - delta.y() * scale)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if not self.session.is_open:
            return
        point = self.vb.mapSceneToView(scene_pos)
        self.hover_changed.emit(self.voxel_at(point))
        self._update_cursor(point)
