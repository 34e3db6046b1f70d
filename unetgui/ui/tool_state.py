"""Editing and display settings shared by the view and the panels (not document state)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

TOOLS = ("navigate", "brush", "background", "eraser", "fill", "ruler")
#: what the label overlay shows: the user's annotation (solid) and the model's prediction (lighter, outlined),
#: or either alone
DISPLAYS = ("both", "annotation", "prediction")

#: CT window presets: name -> (width, level) in HU
CT_PRESETS = {"Abdomen": (400, 40), "Liver": (150, 30), "Lung": (1500, -600), "Bone": (1800, 400), "Brain": (80, 40)}


class ToolState(QObject):
    tool_changed = Signal(str)
    brush_size_changed = Signal(int)
    threshold_changed = Signal()
    overlay_changed = Signal()
    window_changed = Signal(float, float)  # width, level: shared by every view of the image
    calipers_changed = Signal()  # the calipers or the ruler

    def __init__(self) -> None:
        super().__init__()
        self._tool = "navigate"  # a click meant to look never paints (B picks the brush)
        self._brush_size = 16  # diameter in pixels
        self.threshold_enabled = False
        self.threshold = (40.0, 200.0)
        self.opacity = 0.5
        self.overlay_visible = True
        self.uncertainty_visible = False  # heat-map of the model's uncertainty over the image
        self.outline = False
        self.display = "both"  # DISPLAYS
        self.hidden_labels: set[int] = set()
        self.window = (400.0, 40.0)  # window width and level of the image's grey values
        self.calipers = None  # ui.calipers.Measurement drawn on its slice, or None
        self.ruler = None  # ui.calipers.Ruler: a distance the user measured, drawn on its plane, or None

    def set_calipers(self, measurement) -> None:
        """Show a RECIST measurement (ui.calipers.Measurement) on its slice, or none (None)."""
        if measurement is not self.calipers:
            self.calipers = measurement
            self.calipers_changed.emit()

    def set_ruler(self, ruler) -> None:
        """Show a distance the user measured (ui.calipers.Ruler) on its plane, or none (None)."""
        if ruler != self.ruler:
            self.ruler = ruler
            self.calipers_changed.emit()

    @property
    def tool(self) -> str:
        return self._tool

    @tool.setter
    def tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(name)
        if name != self._tool:
            self._tool = name
            self.tool_changed.emit(name)

    @property
    def brush_size(self) -> int:
        return self._brush_size

    @brush_size.setter
    def brush_size(self, value: int) -> None:
        value = int(min(256, max(1, value)))
        if value != self._brush_size:
            self._brush_size = value
            self.brush_size_changed.emit(value)

    def set_threshold(self, enabled: bool, low: float | None = None, high: float | None = None) -> None:
        self.threshold_enabled = enabled
        if low is not None and high is not None:
            self.threshold = (min(low, high), max(low, high))
        self.threshold_changed.emit()

    def set_window(self, width: float, level: float) -> None:
        self.window = (max(1.0, float(width)), float(level))
        self.window_changed.emit(*self.window)

    def set_overlay(self, *, opacity: float | None = None, visible: bool | None = None, outline: bool | None = None,
                    hidden: set[int] | None = None, uncertainty: bool | None = None, display: str | None = None) -> None:
        if display is not None:
            if display not in DISPLAYS:
                raise ValueError(display)
            self.display = display
        if uncertainty is not None:
            self.uncertainty_visible = uncertainty
        if opacity is not None:
            self.opacity = float(min(1.0, max(0.0, opacity)))
        if visible is not None:
            self.overlay_visible = visible
        if outline is not None:
            self.outline = outline
        if hidden is not None:
            self.hidden_labels = set(hidden)
        self.overlay_changed.emit()
