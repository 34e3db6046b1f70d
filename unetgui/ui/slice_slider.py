"""Slice slider of the shown plane with its number, reviewed planes marked as ticks below it (planes crossed
by annotation made in another plane as shorter, dimmer ticks: partly annotated; planes with strokes only, not
reviewed, as short orange ticks), and the model's uncertainty per axial slice as a strip above it (yellow to
red: where a correction helps most). Reviewed planes without any label ("nothing here", X) are grey-blue ticks."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSignalBlocker, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QStyle, QStyleOptionSlider, QWidget

from unetgui.core.session import Session

#: tick colours: reviewed (truth), strokes only (annotated voxels, the rest of the plane is the model's)
REVIEWED_TICK, STROKES_TICK = QColor(60, 200, 90), QColor(255, 150, 30)


class _MarkedSlider(QSlider):
    def __init__(self) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.marks = np.zeros(0, bool)
        self.partial = np.zeros(0, bool)  # partly annotated (crossed by a reviewed plane of another axis)
        self.empty = np.zeros(0, bool)  # reviewed without any label ("nothing here"): drawn grey-blue
        self.strokes = np.zeros(0, bool)  # annotated by strokes (drawn when not reviewed)
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
        def tick(z: int, top: int) -> None:
            x = groove.left() + handle.width() / 2 + span * (z - self.minimum()) / (self.maximum() - self.minimum())
            painter.drawLine(int(x), top, int(x), self.height() - 1)

        painter.setPen(QPen(QColor(60, 200, 90, 110), 1))
        partial = self.partial & ~self.marks if self.partial.shape == self.marks.shape else self.partial
        for z in np.flatnonzero(partial):  # short ticks: partly annotated; long ones: reviewed
            tick(int(z), (groove.bottom() + self.height()) // 2)
        strokes = self.strokes & ~self.marks if self.strokes.shape == self.marks.shape else np.zeros(self.marks.shape, bool)
        painter.setPen(QPen(STROKES_TICK, 2))
        for z in np.flatnonzero(strokes):  # strokes only: short and orange, unlike a reviewed plane's long green tick
            tick(int(z), (groove.bottom() + self.height()) // 2)
        empty = self.empty if self.empty.shape == self.marks.shape else np.zeros(self.marks.shape, bool)
        painter.setPen(QPen(REVIEWED_TICK, 2))
        for z in np.flatnonzero(self.marks & ~empty):
            tick(int(z), groove.bottom() + 1)
        painter.setPen(QPen(QColor(120, 140, 190), 2))
        for z in np.flatnonzero(self.marks & empty):
            tick(int(z), groove.bottom() + 1)
        painter.end()


class SliceSlider(QWidget):
    """Shows and sets the shown plane's index; green ticks mark reviewed planes, grey-blue ones reviewed planes
    without any label ("nothing here"), short green ones partly annotated, short orange ones strokes only."""

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
        self.slider.valueChanged.connect(session.set_index)
        session.listeners.volume_changed.append(self._on_volume_changed)
        session.listeners.axis_changed.append(lambda axis: self._on_volume_changed() if session.is_open else None)
        session.listeners.slice_changed.append(self._show_slice)
        session.listeners.reviewed_changed.append(self._on_reviewed_changed)
        session.listeners.labels_changed.append(self._on_labels_changed)
        session.listeners.uncertainty_changed.append(self._on_scores_changed)

    def _on_scores_changed(self) -> None:  # the scores are per axial slice
        self.slider.scores = self.session.slice_scores.copy() if self.session.axis == 0 else np.zeros(0)
        self.slider.update()

    def _on_volume_changed(self) -> None:
        self.slider.marks = np.zeros(0, bool)  # another volume or axis: every plane is read again
        self._crossing = ()
        self.slider.strokes = self.session.stroked_planes(self.session.axis)
        self._on_scores_changed()
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, self.session.volume.shape[self.session.axis] - 1)
        self._on_reviewed_changed()

    def _show_slice(self, index: int) -> None:
        s = self.session
        with QSignalBlocker(self.slider):
            self.slider.setValue(index)
        n = s.volume.shape[s.axis]
        if s.axis == 0 and s.test[index]:
            mark = "  test"
        elif s.reviewed_in(s.axis)[index]:
            mark = "  nothing here" if self.slider.empty.size > index and self.slider.empty[index] else "  reviewed"
        elif self.slider.strokes.size > index and self.slider.strokes[index]:
            mark = "  strokes"
        else:
            mark = "  partly" if self.slider.partial.size > index and self.slider.partial[index] else ""
        self.label.setText(f"{index + 1} / {n}{mark}")

    def _on_labels_changed(self, slices, box) -> None:
        """A reviewed plane that gains or loses its last label changes its tick (only reviewed planes are read);
        a plane that gains or loses its last stroke too."""
        s = self.session
        if not s.is_open:
            return
        # only the planes the change touched are read again (a stroke reports its slices and its box)
        planes = slices if s.axis == 0 else (range(box[s.axis].start, box[s.axis].stop) if box is not None else None)
        strokes = self.slider.strokes
        if strokes.shape != (s.volume.shape[s.axis],):
            strokes = s.stroked_planes(s.axis)
        elif box is not None:  # an edit or an undo (whole slices without a box: a segmentation, no annotation)
            strokes = s.stroked_planes(s.axis, planes, strokes)
        if not np.array_equal(strokes, self.slider.strokes):
            self.slider.strokes = strokes
            self.slider.update()
            self._show_slice(s.index)
        if self.slider.marks.any():
            empty = s.empty_reviewed(s.axis, planes, self.slider.empty)
            if not np.array_equal(empty, self.slider.empty):
                self.slider.empty = empty
                self.slider.update()
                self._show_slice(s.index)

    def _on_reviewed_changed(self) -> None:
        s = self.session
        if not s.is_open:
            return
        marks = s.reviewed_in(s.axis).copy()
        crossing = tuple(s.reviewed_in(a).copy() for a in range(3) if a != s.axis)
        seen = getattr(self, "_crossing", ())
        if len(seen) != 2 or not all(np.array_equal(a, b) for a, b in zip(seen, crossing)):
            self._crossing = crossing  # a plane of another axis reviewed or not: strokes in it count no more, or again
            self.slider.strokes = s.stroked_planes(s.axis)
        # only planes whose flag flipped are read again
        flipped = np.flatnonzero(marks != self.slider.marks) if marks.shape == self.slider.marks.shape else None
        self.slider.empty = s.empty_reviewed(s.axis, flipped, self.slider.empty if flipped is not None else None)
        self.slider.marks = marks
        # crossed by a reviewed plane of another axis (a test slice never trains: not marked)
        others = [s.reviewed_in(a).any() for a in range(3) if a != s.axis]
        partial = np.full(s.volume.shape[s.axis], any(others))
        if s.axis == 0:
            partial &= ~s.test
        self.slider.partial = partial
        self.slider.update()
        self._show_slice(s.index)
