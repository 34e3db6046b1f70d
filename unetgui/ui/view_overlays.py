"""What a slice view draws over the image: the label overlay (the user's annotation told apart from the model's
prediction, :func:`overlay_rgba`), the uncertainty stipple and its legend, and the text overlays (orientation
letters, plane position, window/level)."""

from __future__ import annotations

from functools import lru_cache

import cv2
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

#: the share of the opacity a prediction's fill gets (the annotation's fill gets all of it)
PREDICTION_FILL = 1 / 3
#: background the user's strokes annotated ("none of the labels here"): a dark shade without hue, unlike the
#: saturated label colours and the white uncertainty stipple; its alpha at full opacity
BACKGROUND_RGB = (0, 0, 0)
BACKGROUND_ALPHA = 0.7
#: its edge and hatching (grey lines across the shade, as drawings mark what is excluded), hue-free too: the
#: shade reads as painted, not as dark anatomy, and shows on dark tissue as well
BACKGROUND_EDGE_RGB = (150, 150, 150)
HATCH_PERIOD = 6  # pixels between the hatching's diagonals
_KERNEL = np.ones((3, 3), np.uint8)
# the bits of a pixel's index into the overlay's colour table (:func:`overlay_lut`): its label (8 bits), then
# truth, marked background, rim, and a pattern: the dashes of outlines (outline only), else the hatching
_TRUTH, _MARKED, _RIM, _PATTERN = 1 << 8, 1 << 9, 1 << 10, 1 << 11


@lru_cache(maxsize=16)
def _pattern(h: int, w: int, outline: bool) -> np.ndarray:
    """The pattern bit of an ``h`` x ``w`` plane. Outline: every other pair of pixels along rows and columns, a
    rim drawn through it is dashed; else diagonals :data:`HATCH_PERIOD` apart, the background's hatching."""
    n = 4 if outline else HATCH_PERIOD
    r, c = np.ogrid[0:n, 0:n]
    tile = ((r + c) % 4 < 2) if outline else ((r + c) % n == 0)
    out = np.tile(tile.astype(np.uint16) * _PATTERN, (h // n + 1, w // n + 1))[:h, :w].copy()
    out.flags.writeable = False
    return out


def overlay_lut(colors: np.ndarray, opacity: float, display: str = "both", outline: bool = False) -> np.ndarray:
    """The RGBA (uint8, packed in uint32) of every pixel index of :func:`overlay_rgba`: a label value with the
    bits truth (the user's annotation), marked (annotated background), rim (a neighbour differs) and pattern
    (outline: dash; else: hatching)."""
    index = np.arange(1 << 12)
    label = index & 0xFF
    truth, marked, rim, pattern = ((index & bit) != 0 for bit in (_TRUTH, _MARKED, _RIM, _PATTERN))
    colors = np.ascontiguousarray(colors, np.uint8)
    opacity = min(1.0, max(0.0, float(opacity)))
    shown = colors[label, 3] != 0
    if display == "annotation":
        shown &= truth
    elif display == "prediction":
        shown &= ~truth
    out = np.zeros((index.size, 4), np.uint8)
    out[:, :3] = colors[label, :3]
    if outline:  # at full strength whatever the opacity, as the old outline
        alpha = np.where(shown & rim & (truth | pattern), 255, 0)
    elif opacity > 0:
        alpha = np.where(shown, np.where(truth, round(255 * opacity),
                                         np.where(rim, 255, round(255 * opacity * PREDICTION_FILL))), 0)
    else:
        alpha = np.zeros(index.size, int)
    out[:, 3] = alpha
    background = marked & (label == 0) & (display != "prediction")
    if outline or opacity > 0:
        out[background & rim] = (*BACKGROUND_EDGE_RGB, 255)
        if not outline:
            out[background & ~rim] = (*BACKGROUND_RGB, round(255 * opacity * BACKGROUND_ALPHA))
            out[background & ~rim & pattern] = (*BACKGROUND_EDGE_RGB, round(255 * min(1.0, 2 * opacity) * 0.8))
    return out.view(np.uint32).reshape(-1)


def overlay_rgba(labels: np.ndarray, truth: np.ndarray, colors: np.ndarray, opacity: float, display: str = "both",
                 outline: bool = False, background: np.ndarray | None = None,
                 lut: np.ndarray | None = None) -> np.ndarray:
    """The label overlay of a plane as ``(h, w, 4)`` RGBA uint8, non-premultiplied.

    ``labels``: the plane's values (uint8); ``truth``: bool, its voxels that are the user's annotation (the rest
    is the model's prediction); ``colors``: ``(256, 4)`` uint8, each value's RGB with alpha 255 (shown) or 0
    (hidden labels, 0, 255 "not annotated"); ``opacity`` 0..1; ``display``: "both", "annotation" (the truth
    part only) or "prediction" (the rest only); ``background``: bool, the voxels the user's strokes annotated
    as background, shaded where they hold 0 (None: none). ``lut``: :func:`overlay_lut` of the same colours,
    opacity, display and outline, when the caller keeps it.

    The annotation is a solid fill at ``opacity``; the prediction a lighter fill (:data:`PREDICTION_FILL` of
    it) with a 1-px rim in the label's colour at full strength, the model's proposal (a rim also where the
    user's correction of it begins); annotated background a dark hue-free shade, hatched, with a grey rim.
    ``outline``: rims only: solid for the annotation, dashed for the prediction, grey for annotated background.
    """
    h, w = labels.shape
    if lut is None:
        lut = overlay_lut(colors, opacity, display, outline)
    key = np.asarray(labels, np.uint8).astype(np.uint16)
    truth = np.asarray(truth, bool)
    key |= truth.view(np.uint8).astype(np.uint16) << 8
    if background is not None:
        key |= (np.asarray(background, bool) & (labels == 0)).view(np.uint8).astype(np.uint16) << 9
    # a neighbour (of 8) differs in label, side or background mark: the inner 1-px rim of every region
    rim = cv2.morphologyEx(key, cv2.MORPH_GRADIENT, _KERNEL) != 0
    key |= rim.view(np.uint8).astype(np.uint16) << 10
    if outline or background is not None:
        key |= _pattern(h, w, outline)
    return lut.take(key).view(np.uint8).reshape(h, w, 4)


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
