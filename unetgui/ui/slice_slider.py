"""Slice slider with the slice number, reviewed slices marked as ticks below it, and the model's
uncertainty per slice as a strip above it (yellow to red: where a correction helps most)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSignalBlocker, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QStyle, QStyleOptionSlider, QWidget

from unetgui.core.session import Session


class _MarkedSlider(QSlider):
    def __init__(self) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.marks = np.zeros(0, bool)
        self.scores = np.zeros(0)  # per-slice uncertainty score (NaN: not segmented): a strip above the groove

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if self.maximum() <= self.minimum():
            return
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        groove = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderGroove, self)
        handle = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, self)
        span = groove.width() - handle.width()
        painter = QPainter(self)
        finite = self.scores[np.isfinite(self.scores)] if self.scores.size else self.scores
        if finite.size and finite.max() > 0:
            top, n = finite.max(), self.maximum() - self.minimum()
            step = span / n
            for z, score in enumerate(self.scores):
                if not np.isfinite(score) or (z < self.marks.size and self.marks[z]):
                    continue
                u = float(score / top)
                x = groove.left() + handle.width() / 2 + span * (z - self.minimum()) / n
                painter.fillRect(QRectF(x - step / 2, 0, max(step, 1.0), max(2.0, groove.top() - 1)),
                                 QColor(255, int(230 * (1 - u)), 40, int(40 + 215 * u)))
        if not self.marks.any():
            painter.end()
            return
        painter.setPen(QPen(QColor(60, 200, 90), 2))
        for z in np.flatnonzero(self.marks):
            x = groove.left() + handle.width() / 2 + span * (z - self.minimum()) / (self.maximum() - self.minimum())
            painter.drawLine(int(x), groove.bottom() + 1, int(x), self.height() - 1)
        painter.end()


class SliceSlider(QWidget):
    """Shows and sets the session's current slice; green ticks mark reviewed slices."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.slider = _MarkedSlider()
        self.slider.setMinimumHeight(30)
        self.label = QLabel("-")
        self.label.setMinimumWidth(90)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(session.set_slice)
        session.listeners.volume_changed.append(self._on_volume_changed)
        session.listeners.slice_changed.append(self._show_slice)
        session.listeners.reviewed_changed.append(self._on_reviewed_changed)
        session.listeners.uncertainty_changed.append(self._on_scores_changed)

    def _on_scores_changed(self) -> None:
        self.slider.scores = self.session.slice_scores.copy()
        self.slider.update()

    def _on_volume_changed(self) -> None:
        self.slider.scores = self.session.slice_scores.copy()
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, self.session.volume.shape[0] - 1)
        self._on_reviewed_changed()
        self._show_slice(self.session.current_slice)

    def _show_slice(self, z: int) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setValue(z)
        n = self.session.volume.shape[0]
        mark = "  test" if self.session.test[z] else ("  reviewed" if self.session.reviewed[z] else "")
        self.label.setText(f"{z + 1} / {n}{mark}")

    def _on_reviewed_changed(self) -> None:
        self.slider.marks = self.session.reviewed.copy()
        self.slider.update()
        if self.session.is_open:
            self._show_slice(self.session.current_slice)
