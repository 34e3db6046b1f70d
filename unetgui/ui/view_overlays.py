"""What a slice view draws over the image besides the labels: the uncertainty stipple and its legend, and the
text overlays (orientation letters, plane position, window/level)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QWidget


def _heat_lut() -> np.ndarray:
    """Uncertainty 0..255 -> RGBA: transparent when sure, white and more opaque when unsure. White (no hue) on
    a stipple (:func:`stipple`) looks like no label colour, all of which are saturated hues."""
    u = np.arange(256) / 255.0
    lut = np.full((256, 4), 255, np.uint8)
    lut[:, 3] = np.round(235 * np.clip((u - 0.05) / 0.45, 0, 1) ** 0.6).astype(np.uint8)  # opaque from 0.5 up
    return lut


def stipple(plane: np.ndarray) -> np.ndarray:
    """Every other pixel of a checkerboard cleared: the uncertainty is drawn as a texture over the image and
    the labels, never as a fill that could be read as a label."""
    out = plane.copy()
    out[0::2, 1::2] = 0
    out[1::2, 0::2] = 0
    return out


HEAT_LUT = _heat_lut()


def direction_letter(vector) -> str:
    """The patient direction a world (RAS) vector points to most: R/L, A/P or S/I."""
    k = int(np.argmax(np.abs(vector)))
    return "RAS"[k] if vector[k] > 0 else "LPI"[k]


def overlay_label(parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setStyleSheet("QLabel { color: rgb(255, 220, 120); background: rgba(0, 0, 0, 110); padding: 1px 3px; }")
    label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
    return label


class UncertaintyLegend(QLabel):
    """The heat-map's colour scale, in the view's top-left corner while the heat-map is on."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        width, height = 160, 12
        bar = np.zeros((height, width, 4), np.uint8)
        bar[:] = HEAT_LUT[np.linspace(0, 255, width).astype(int)]
        bar[..., 3] = np.maximum(bar[..., 3], 40)
        bar[stipple(np.ones((height, width), bool)) == 0] = (0, 0, 0, 0)
        self._bar = np.ascontiguousarray(bar)
        image = QImage(self._bar.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
        self._pixmap = QPixmap.fromImage(image.copy())
        self.setStyleSheet("QLabel { background: rgba(0, 0, 0, 170); color: white; padding: 4px; }")
        self._render("Model uncertainty")
        self.move(8, 8)
        self.hide()

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


class PlaneText:
    """The text a slice view draws on its image: orientation letters mid-edge, the plane's number and
    position bottom left, the window/level top right (the uncertainty legend has the top left)."""

    def __init__(self, view: QWidget) -> None:
        self.view = view
        self.letters = {edge: overlay_label(view) for edge in ("top", "bottom", "left", "right")}
        self.info = overlay_label(view)
        self.levels = overlay_label(view)
        for label in self._labels():
            label.hide()

    def _labels(self) -> list[QLabel]:
        return [*self.letters.values(), self.info, self.levels]

    def show(self, letters: dict[str, str], info: str, window: tuple[float, float]) -> None:
        for edge, text in letters.items():
            self.letters[edge].setText(text)
            self.letters[edge].adjustSize()
        self.info.setText(info)
        self.info.adjustSize()
        for label in self._labels():
            label.show()
        self.set_levels(*window)

    def set_levels(self, width: float, level: float) -> None:
        self.levels.setText(f"W {width:.0f}  L {level:.0f}")
        self.levels.adjustSize()
        self.place()

    def place(self) -> None:
        w, h = self.view.width(), self.view.height()
        letters = self.letters
        letters["top"].move((w - letters["top"].width()) // 2, 4)
        letters["bottom"].move((w - letters["bottom"].width()) // 2, h - letters["bottom"].height() - 4)
        letters["left"].move(4, (h - letters["left"].height()) // 2)
        letters["right"].move(w - letters["right"].width() - 4, (h - letters["right"].height()) // 2)
        self.info.move(4, h - self.info.height() - 4)
        self.levels.move(w - self.levels.width() - 4, 4)
        for edge, corner in (("bottom", self.info), ("top", self.levels)):  # a narrow view: the letter moves inwards
            if corner.geometry().intersects(letters[edge].geometry()):
                step = letters[edge].height() + 2
                letters[edge].move(letters[edge].x(), letters[edge].y() + (-step if edge == "bottom" else step))
