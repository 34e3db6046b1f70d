"""Tools, brush size, threshold brush, overlay display (what it shows: the annotation, the prediction or both)
and window presets, and the slice commands. Buttons share the dock's width, so their text stays whole from a
laptop screen up (the window/level itself is drawn on the image). Whether edits mark their plane reviewed is
beside the training counts (training_panel.py) and in the Edit menu."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QSizePolicy,
    QSlider, QToolButton, QVBoxLayout, QWidget,
)

from unetgui.ui.actions import Actions
from unetgui.ui.slice_view import SliceView
from unetgui.ui.tool_state import CT_PRESETS, DISPLAYS, ToolState

#: the "Show" choices, in the order of tool_state.DISPLAYS
SHOW = {"both": "Show annotation and prediction", "annotation": "Show annotation only",
        "prediction": "Show prediction only"}


def _button(action) -> QToolButton:
    button = QToolButton()
    button.setDefaultAction(action)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)  # the column's width, at least the text's
    return button


class ToolPanel(QWidget):
    def __init__(self, tools: ToolState, view: SliceView, actions: Actions) -> None:
        super().__init__()
        self.tools, self.view = tools, view
        tool_box = QGroupBox("Tool")
        grid = QGridLayout(tool_box)
        self.tool_buttons = {}
        # in pairs: looking and painting the label, painting background and taking annotation away, the
        # click-fill beside the threshold switch (the rows of the panel before the background brush: it fits a
        # laptop's screen without scrolling)
        for action, row, col in ((actions.navigate, 0, 0), (actions.brush, 0, 1), (actions.background, 1, 0),
                                 (actions.eraser, 1, 1), (actions.fill, 2, 0)):
            button = self.tool_buttons[action.text()] = _button(action)
            grid.addWidget(button, row, col)
        self.size_slider = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=128)
        self.size_label = QLabel()
        self.size_slider.valueChanged.connect(lambda v: setattr(self.tools, "brush_size", v))
        size_row = QHBoxLayout()
        size_row.addWidget(QLabel("Size"))
        size_row.addWidget(self.size_slider, 1)
        size_row.addWidget(self.size_label)
        grid.addLayout(size_row, 3, 0, 1, 2)
        self.threshold_check = QCheckBox("Paint only within")
        self.low, self.high = QDoubleSpinBox(), QDoubleSpinBox()
        for spin in (self.low, self.high):
            spin.setRange(-100000, 100000)
            spin.setDecimals(0)
            spin.valueChanged.connect(self._on_threshold_edited)
        self.threshold_check.toggled.connect(self._on_threshold_edited)
        thr = QHBoxLayout()
        thr.addWidget(self.low)
        thr.addWidget(QLabel("to"))
        thr.addWidget(self.high)
        grid.addWidget(self.threshold_check, 2, 1)
        grid.addLayout(thr, 4, 0, 1, 2)
        edit_box = QGroupBox("Slice")
        edit = QGridLayout(edit_box)
        for i, action in enumerate((actions.fill_holes, actions.interpolate, actions.copy_previous, actions.copy_next,
                                    actions.mark_reviewed, actions.mark_empty, actions.undo, actions.go_to_structure)):
            edit.addWidget(_button(action), i // 2, i % 2)
        overlay_box = QGroupBox("Display")
        form = QFormLayout(overlay_box)
        self.opacity = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.opacity.valueChanged.connect(lambda v: self.tools.set_overlay(opacity=v / 100))
        self.visible = QCheckBox("Show labels")
        self.visible.setToolTip(actions.toggle_overlay.shortcut().toString())
        self.visible.toggled.connect(lambda on: self.tools.set_overlay(visible=on))
        self.outline = QCheckBox("Outline only")
        self.outline.toggled.connect(lambda on: self.tools.set_overlay(outline=on))
        self.window_preset = QComboBox()
        self.window_preset.addItems(["Window...", *[f"CT {name}" for name in CT_PRESETS], "Auto (percentiles)"])
        self.window_preset.activated.connect(self._on_preset_chosen)
        # as wide as "Window..." (its list opens as wide as its longest preset): the row keeps the dock narrow
        self.window_preset.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.window_preset.setMinimumContentsLength(len("Window..."))
        self.window_preset.setToolTip("Window/level presets; right-drag on the image sets it (shown on the image)")
        self.display_combo = QComboBox()
        self.display_combo.addItems([SHOW[d] for d in DISPLAYS])
        self.display_combo.setToolTip("Your annotation is drawn solid, the model's prediction lighter with an outline, "
                                      "background you painted as a hatched shade. " + actions.cycle_display.toolTip())
        self.display_combo.activated.connect(lambda i: self.tools.set_overlay(display=DISPLAYS[i]))
        form.addRow(self.visible, self.outline)
        form.addRow(self.display_combo)  # a row of its own: a label beside it would widen the dock past a laptop's
        looks = QHBoxLayout()  # opacity and the window presets share a row ("Window..." names itself): the
        looks.addWidget(self.opacity, 1)  # tools fit a laptop's screen with the Show row added
        looks.addWidget(self.window_preset)
        form.addRow("Opacity", looks)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(tool_box)
        layout.addWidget(overlay_box)  # looking comes before editing: display above the slice commands
        layout.addWidget(edit_box)
        layout.addStretch(1)
        tools.brush_size_changed.connect(self._show_size)
        tools.overlay_changed.connect(self._show_overlay)
        tools.threshold_changed.connect(self._show_threshold)
        self._show_size(tools.brush_size)
        self._show_overlay()
        self._show_threshold()

    def _show_size(self, value: int) -> None:
        with QSignalBlocker(self.size_slider):
            self.size_slider.setValue(value)
        self.size_label.setText(f"{value} px")

    def _show_overlay(self) -> None:
        for widget, value in ((self.opacity, int(round(self.tools.opacity * 100))), (self.visible, self.tools.overlay_visible),
                              (self.outline, self.tools.outline)):
            with QSignalBlocker(widget):
                (widget.setValue if isinstance(widget, QSlider) else widget.setChecked)(value)
        with QSignalBlocker(self.display_combo):
            self.display_combo.setCurrentIndex(DISPLAYS.index(self.tools.display))

    def _show_threshold(self) -> None:
        for widget in (self.threshold_check, self.low, self.high):
            widget.blockSignals(True)
        self.threshold_check.setChecked(self.tools.threshold_enabled)
        self.low.setValue(self.tools.threshold[0])
        self.high.setValue(self.tools.threshold[1])
        for widget in (self.threshold_check, self.low, self.high):
            widget.blockSignals(False)

    def _on_threshold_edited(self) -> None:
        self.tools.set_threshold(self.threshold_check.isChecked(), self.low.value(), self.high.value())

    def _on_preset_chosen(self, index: int) -> None:
        text = self.window_preset.itemText(index)
        if text.startswith("CT "):
            self.view.set_window(*CT_PRESETS[text[3:]])
        elif text.startswith("Auto"):
            self.view.auto_window()
        with QSignalBlocker(self.window_preset):
            self.window_preset.setCurrentIndex(0)
