"""The linked three-plane layout: axial, coronal and sagittal views of one position (the session's), with a
crosshair in each where the other two planes cut it. A click (Navigate) moves the position, so the other
views follow; the view last clicked, painted or scrolled is the edited plane (framed)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QSplitter, QVBoxLayout, QWidget

from unetgui.core.session import Session
from unetgui.ui.slice_view import SliceView
from unetgui.ui.tool_state import ToolState

_ACTIVE = "QFrame#plane { border: 2px solid rgb(80, 200, 255); }"
_IDLE = "QFrame#plane { border: 2px solid rgb(40, 40, 40); }"


class ThreePlaneView(QWidget):
    """Axial large on the left, coronal and sagittal stacked on the right (splitters let the user resize)."""

    def __init__(self, session: Session, tools: ToolState) -> None:
        super().__init__()
        self.session = session
        self.views = [SliceView(session, tools, axis) for axis in range(3)]
        self.frames = []
        for view in self.views:
            view.show_crosshair = True
            frame = QFrame()
            frame.setObjectName("plane")
            layout = QVBoxLayout(frame)
            layout.setContentsMargins(2, 2, 2, 2)
            layout.addWidget(view)
            self.frames.append(frame)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.frames[1])
        right.addWidget(self.frames[2])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.frames[0])
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        session.listeners.axis_changed.append(lambda axis: self._frame_active())
        self._frame_active()

    def _frame_active(self) -> None:
        for axis, frame in enumerate(self.frames):
            frame.setStyleSheet(_ACTIVE if axis == self.session.axis else _IDLE)

    def set_live(self, live: bool) -> None:
        for view in self.views:
            view.set_live(live)

    def fit(self) -> None:
        for view in self.views:
            view.fit()

    def zoom_to(self, box) -> None:
        for view in self.views:
            view.zoom_to(box)


def go_to_structure(session: Session, views: list[SliceView]) -> str:
    """Centre the position on the active label (a voxel of it nearest its centre) and zoom the views onto
    it; returns what happened, for the status bar."""
    from unetgui.core.tools import structure_extent

    if not session.is_open:
        return "Open an image first"
    label = session.table.get(session.active_label)
    name = label.name if label is not None else str(session.active_label)
    found = structure_extent(session.labels.labels, session.active_label)
    if found is None:
        return f"No voxel is labelled {name} yet"
    centre, box = found
    session.set_position(centre)
    for view in views:
        if view.live:
            view.zoom_to(box)
    size = " x ".join(f"{(s.stop - s.start) * d:.0f}" for s, d in zip(box[::-1], session.volume.spacing[::-1]))
    return f"{name}: {size} mm (x, y, z), centred at voxel (x {centre[2]}, y {centre[1]}, z {centre[0]})"
