"""The image area of the window: one view of the edited plane or three linked planes (the layout, remembered),
and the bar under it with the layout choice and the slice slider. Hidden until an image is open."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from unetgui.core.geometry import plane_names
from unetgui.core.session import Session
from unetgui.ui.plane_views import ThreePlaneView
from unetgui.ui.slice_slider import SliceSlider
from unetgui.ui.slice_view import PLANES, SliceView
from unetgui.ui.tool_state import ToolState

#: the layout choice of the view bar, after the three planes
THREE_PLANES = "Three planes"


class ViewArea(QWidget):
    layout_changed = Signal(bool)  # three linked planes (True) or one view

    def __init__(self, session: Session, tools: ToolState) -> None:
        super().__init__()
        self.session = session
        self.view = SliceView(session, tools)  # one plane (the session's)
        self.planes = ThreePlaneView(session, tools)  # or three linked ones
        self.planes.set_live(False)
        self.slider = SliceSlider(session)
        self.plane = QComboBox()
        self.plane.addItems([p.capitalize() for p in PLANES] + [THREE_PLANES])
        self.plane.setToolTip("One plane (1, 2, 3) or three linked planes with a crosshair (4)")
        self.plane.activated.connect(self._choose)
        self.view.plane_changed.connect(lambda p: self.plane.setCurrentIndex(
            len(PLANES) if self.three_planes else PLANES.index(p)))
        self.three_planes = QSettings().value("view/three_planes", False, type=bool)  # the last layout chosen
        self.bar = QWidget()
        bar = QHBoxLayout(self.bar)
        bar.setContentsMargins(4, 0, 4, 2)
        bar.addWidget(QLabel("View"))
        bar.addWidget(self.plane)
        bar.addWidget(self.slider, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.planes, 1)
        layout.addWidget(self.bar)
        session.listeners.volume_changed.append(self._on_volume_changed)

    @property
    def views(self) -> list[SliceView]:
        return [self.view, *self.planes.views]

    def live_views(self) -> list[SliceView]:
        return [v for v in self.views if v.live]

    def _choose(self, index: int) -> None:
        if index == len(PLANES):
            self.set_three_planes(True)
        else:
            self.set_three_planes(False)
            self.session.set_axis(index)

    def set_three_planes(self, on: bool) -> None:
        """One view of the edited plane, or three linked planes (remembered for the next start)."""
        self.three_planes = bool(on)
        QSettings().setValue("view/three_planes", self.three_planes)
        self.view.setVisible(not on)
        self.planes.setVisible(on)
        self.view.set_live(not on)
        self.planes.set_live(on)
        self.plane.setCurrentIndex(len(PLANES) if on else self.session.axis)
        self.layout_changed.emit(self.three_planes)

    def _on_volume_changed(self) -> None:
        for axis, name in enumerate(plane_names(self.session.volume.affine)):  # a sagittal MR's first plane: sagittal
            self.plane.setItemText(axis, name.capitalize())
        self.set_three_planes(self.three_planes)
