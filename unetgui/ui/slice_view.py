"""The slice view: image + label overlay of one plane, painting, window/level, zoom and pan.

Mouse: left paints with the active tool (navigate: pans), right-drag sets window/level, middle-drag pans,
wheel changes slice, Ctrl+wheel zooms. Pixels are shown at their physical size (mm) so the aspect ratio
is right. Every plane (axial, coronal, sagittal) is edited the same way: the session holds which plane is
shown and where (``Session.axis``, ``Session.position``); this view draws it and sends edits in the plane's
(row, column) to the session.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsEllipseItem, QLabel, QWidget

from unetgui.core.session import AXES, BrushSettings, Session
from unetgui.core.volume import UNANNOTATED
from unetgui.ui.tool_state import ToolState

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

PLANES = AXES


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


def _heat_lut() -> np.ndarray:
    """Uncertainty 0..255 -> RGBA: transparent when sure, yellow to red and more opaque when unsure."""
    u = np.arange(256) / 255.0
    lut = np.zeros((256, 4), np.uint8)
    lut[:, 0] = 255
    lut[:, 1] = np.round(230 * (1 - u)).astype(np.uint8)
    lut[:, 2] = np.round(40 * (1 - u)).astype(np.uint8)
    lut[:, 3] = np.round(235 * np.clip((u - 0.05) / 0.45, 0, 1) ** 0.6).astype(np.uint8)  # opaque from 0.5 up
    return lut


HEAT_LUT = _heat_lut()


class UncertaintyLegend(QLabel):
    """The heat-map's colour scale, in the view's top-left corner while the heat-map is on."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        width, height = 160, 12
        bar = np.zeros((height, width, 4), np.uint8)
        bar[:] = HEAT_LUT[np.linspace(0, 255, width).astype(int)]
        bar[..., 3] = np.maximum(bar[..., 3], 40)
        self._bar = np.ascontiguousarray(bar)
        image = QImage(self._bar.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
        self._pixmap = QPixmap.fromImage(image.copy())
        self.setStyleSheet("QLabel { background: rgba(0, 0, 0, 170); color: white; padding: 4px; }")
        self.set_available(False)
        self.move(8, 8)
        self.hide()

    def set_available(self, available: bool) -> None:
        self._render("Model uncertainty" if available else "Model uncertainty: segment first")

    def _render(self, text: str) -> None:
        pixmap = QPixmap(200, 44)
        pixmap.fill(QColor(0, 0, 0, 0))
        painter = QPainter(pixmap)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(0, 12, text)
        painter.drawPixmap(0, 16, self._pixmap)
        painter.drawText(0, 42, "sure")
        painter.drawText(128, 42, "unsure")
        painter.end()
        self.setPixmap(pixmap)
        self.adjustSize()


class SliceView(pg.GraphicsLayoutWidget):
    """Shows ``session``'s current slice with its labels; edits through the session's methods."""

    hover_changed = Signal(object)  # (z, y, x) voxel under the cursor, or None
    window_changed = Signal(float, float)  # width, level
    plane_changed = Signal(str)

    def __init__(self, session: Session, tools: ToolState) -> None:
        super().__init__()
        self.session, self.tools = session, tools
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
        self.setBackground("k")
        self.window = (400.0, 40.0)
        self._last: tuple[float, float] | None = None
        self._lut = np.zeros((256, 4), np.uint8)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        session.listeners.volume_changed.append(self._on_volume_changed)
        session.listeners.slice_changed.append(lambda index: self._refresh())
        session.listeners.axis_changed.append(self._on_axis_changed)
        session.listeners.labels_changed.append(self._on_labels_changed)
        session.listeners.table_changed.append(self._on_overlay_style_changed)
        session.listeners.uncertainty_changed.append(self._refresh_heat)
        tools.overlay_changed.connect(self._on_overlay_style_changed)
        tools.brush_size_changed.connect(lambda _: self._update_cursor())
        tools.tool_changed.connect(lambda _: (self._finish_stroke(), self._update_cursor()))

    @property
    def plane(self) -> str:
        """The plane shown (the session's)."""
        return PLANES[self.session.axis]

    # -- geometry --------------------------------------------------------------------------------
    def _plane_spacing(self) -> tuple[float, float]:
        """(row spacing, column spacing) in mm of the displayed plane."""
        sz, sy, sx = self.session.volume.spacing
        return {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}[self.plane]

    def _flips(self) -> tuple[bool, bool]:
        """(flip rows, flip columns) that put the displayed plane in radiological convention, from the
        affine: axial anterior up and patient right on screen left; coronal/sagittal head up, patient
        right (coronal) / anterior (sagittal) on the left. DICOM axial stacks need no flip; a RAS NIfTI
        needs both."""
        a = self.session.volume.affine  # columns: world step (RAS) of x, y and z index
        flip_rows = a[1, 1] > 0 if self.plane == "axial" else a[2, 2] > 0  # rows would run anterior / up
        flip_cols = a[1, 1] > 0 if self.plane == "sagittal" else a[0, 0] > 0  # columns would run anterior / right
        return bool(flip_rows), bool(flip_cols)

    def _section(self, array: np.ndarray) -> np.ndarray:
        return self.session.plane(array)

    def plane_data(self, array: np.ndarray) -> np.ndarray:
        """The displayed 2-D section of a ``(z, y, x)`` array (flipped for display, see :meth:`_flips`)."""
        out = self._section(array)
        flip_rows, flip_cols = self._flips()
        if not (flip_rows or flip_cols):
            return out
        # a contiguous copy: pyqtgraph renders negative-stride views several times slower
        return np.ascontiguousarray(out[::-1 if flip_rows else 1, ::-1 if flip_cols else 1])

    def _to_array(self, row: float, col: float) -> tuple[float, float]:
        """Displayed (row, col) -> (row, col) of the un-flipped section (works for fractions too)."""
        h, w = self._section(self.session.volume.voxels).shape
        flip_rows, flip_cols = self._flips()
        return (h - 1 - row if flip_rows else row), (w - 1 - col if flip_cols else col)

    def view_point(self, row: float, col: float) -> QPointF:
        """View coordinates (mm) of the centre of section pixel (row, col): the inverse of :meth:`voxel_at`."""
        dr, dc = self._plane_spacing()
        r, c = self._to_array(row, col)  # flipping is its own inverse
        return QPointF((c + 0.5) * dc, (r + 0.5) * dr)

    def voxel_at(self, view_point: QPointF) -> tuple[int, int, int] | None:
        """(z, y, x) of the voxel under a point in view coordinates (mm), or None outside the volume."""
        dr, dc = self._plane_spacing()
        row, col = (int(v) for v in self._to_array(np.floor(view_point.y() / dr), np.floor(view_point.x() / dc)))
        zyx = [row, col]
        zyx.insert(self.session.axis, self.session.index)
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
        if plane not in PLANES or plane == self.plane:
            return
        self._finish_stroke()
        self.session.set_axis(PLANES.index(plane))

    def _on_axis_changed(self, axis: int) -> None:
        self._finish_stroke()
        self._reset_geometry()
        self.plane_changed.emit(PLANES[axis])

    def fit(self) -> None:
        """Zoom so that the whole slice fits the view."""
        self._reset_geometry()

    def set_window(self, width: float, level: float) -> None:
        self.window = (max(1.0, float(width)), float(level))
        w, lv = self.window
        self.image.setLevels((lv - w / 2, lv + w / 2))
        self.window_changed.emit(*self.window)

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
            self.session.set_index(self.session.index + step)

    def _on_volume_changed(self) -> None:
        self._reset_geometry()
        self.auto_window()

    def _reset_geometry(self) -> None:
        if not self.session.is_open:
            return
        self._refresh()
        h, w = self.image.image.shape
        dr, dc = self._plane_spacing()
        rect = QRectF(0, 0, w * dc, h * dr)
        self.image.setRect(rect)
        self.overlay.setRect(rect)
        self._rect = rect
        self._refresh_heat()
        self.vb.setRange(rect, padding=0.02)

    def _on_labels_changed(self, slices: tuple[int, ...], box=None) -> None:
        axis, index = self.session.axis, self.session.index
        if axis == 0:
            shown = index in slices
        else:  # whole axial slices cross every coronal and sagittal plane; a box only those it holds
            shown = bool(slices) and (box is None or box[axis].start <= index < box[axis].stop)
        if shown:
            self._refresh_overlay()

    def _on_overlay_style_changed(self) -> None:
        lut = np.zeros((256, 4), np.uint8)
        alpha = int(round(255 * self.tools.opacity))
        for label in self.session.table:
            if label.value not in self.tools.hidden_labels:
                lut[label.value] = (*label.color, 255 if self.tools.outline else alpha)
        lut[UNANNOTATED] = 0
        self._lut = lut
        self._refresh_overlay()

    # -- drawing ---------------------------------------------------------------------------------
    def _refresh(self) -> None:
        if not self.session.is_open:
            return
        w, lv = self.window
        self.image.setImage(self.plane_data(self.session.volume.voxels), autoLevels=False, levels=(lv - w / 2, lv + w / 2))
        self._refresh_overlay()

    def _refresh_overlay(self) -> None:
        if not self.session.is_open:
            return
        labels = self.plane_data(self.session.labels.labels)
        if self.tools.outline:
            kernel = np.ones((3, 3), np.uint8)
            edge = (cv2.erode(labels, kernel) != labels) | (cv2.dilate(labels, kernel) != labels)
            labels = np.where(edge, labels, 0).astype(np.uint8)
        self.overlay.setVisible(self.tools.overlay_visible)
        self.overlay.setImage(labels, autoLevels=False, levels=(0, 255), lut=self._lut)
        self._refresh_heat()

    def _refresh_heat(self) -> None:
        """The uncertainty heat-map (toggled with U): transparent where the model is sure."""
        uncertainty = self.session.uncertainty if self.session.is_open else None
        show = self.tools.uncertainty_visible and uncertainty is not None
        self.heat.setVisible(show)
        self.legend.setVisible(self.tools.uncertainty_visible)
        self.legend.set_available(uncertainty is not None)
        if show:
            self.heat.setImage(self.plane_data(uncertainty), autoLevels=False, levels=(0, 255), lut=HEAT_LUT)
            if self._rect is not None:
                self.heat.setRect(self._rect)  # after setImage: an ImageItem scales its rect by the image size

    def _update_cursor(self, view_point: QPointF | None = None) -> None:
        show = self.session.is_open and self.tools.tool in ("brush", "eraser")
        if view_point is not None and show:
            dr, dc = self._plane_spacing()
            r = self.tools.brush_size / 2
            self.cursor.setRect(QRectF(view_point.x() - r * dc, view_point.y() - r * dr, 2 * r * dc, 2 * r * dr))
        self.cursor.setVisible(show and view_point is not None)

    # -- mouse -----------------------------------------------------------------------------------
    def can_paint(self) -> bool:
        return self.session.is_open and self.tools.tool in ("brush", "eraser", "fill")

    def _brush(self) -> BrushSettings:
        return BrushSettings(radius=self.tools.brush_size / 2, erase=self.tools.tool == "eraser",
                             threshold=self.tools.threshold if self.tools.threshold_enabled else None)

    def paint_drag(self, ev) -> None:
        if self.tools.tool == "fill" or (not ev.isStart() and self._last is None):
            return  # a drag that lost its stroke (plane or tool changed) paints no more
        point = self.vb.mapToView(ev.pos())
        y, x = self._pixel(point)
        if ev.isStart():
            self.session.begin_stroke("eraser" if self.tools.tool == "eraser" else "brush")
            start = self._pixel(self.vb.mapToView(ev.buttonDownPos()))
            self._last = start
        y0, x0 = self._last if self._last is not None else (y, x)
        self.session.paint_segment(y0, x0, y, x, self._brush())
        self._last = (y, x)
        self._update_cursor(point)
        if ev.isFinish():
            self.session.end_stroke()
            self._last = None

    def click(self, ev) -> None:
        if not self.can_paint():
            return
        point = self.vb.mapToView(ev.pos())
        voxel = self.voxel_at(point)
        if voxel is None:
            return
        if self.tools.tool == "fill":
            row, col = (v for a, v in enumerate(voxel) if a != self.session.axis)
            self.session.flood_fill(row, col)
            return
        y, x = self._pixel(point)
        self.session.begin_stroke("eraser" if self.tools.tool == "eraser" else "brush")
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
