"""Tools, brush size, threshold brush, overlay display (what it shows: the annotation, the prediction or both)
and window presets, the slice commands and whether edits mark their plane reviewed. Buttons share the dock's
width, so their text stays whole from a laptop screen up (the window/level itself is drawn on the image)."""

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
SHOW = {"both": "Annotation and prediction", "annotation": "Annotation only", "prediction": "Prediction only"}


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
        self._actions = actions
        tool_box = QGroupBox("Tool")
        grid = QGridLayout(tool_box)
        self.tool_buttons = {}
        # navigate across the top; the painting tools in pairs: what a stroke adds (the label, background),
        # what takes it away and the click-fill
        for action, row, col, span in ((actions.navigate, 0, 0, 2), (actions.brush, 1, 0, 1),
                                       (actions.background, 1, 1, 1), (actions.eraser, 2, 0, 1), (actions.fill, 2, 1, 1)):
            button = self.tool_buttons[action.text()] = _button(action)
            grid.addWidget(button, row, col, 1, span)
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
        grid.addWidget(self.threshold_check, 4, 0, 1, 2)
        grid.addLayout(thr, 5, 0, 1, 2)
        edit_box = QGroupBox("Slice")
        edit = QGridLayout(edit_box)
        for i, action in enumerate((actions.fill_holes, actions.interpolate, actions.copy_previous, actions.copy_next,
                                    actions.mark_reviewed, actions.mark_empty, actions.undo, actions.go_to_structure)):
            edit.addWidget(_button(action), i // 2, i % 2)
        self.review_on_edit = QCheckBox(actions.review_on_edit.text())
        self.review_on_edit.setToolTip(actions.review_on_edit.toolTip())
        self.review_on_edit.setChecked(actions.review_on_edit.isChecked())
        self.review_on_edit.toggled.connect(self._on_review_on_edit_toggled)
        actions.review_on_edit.toggled.connect(self._show_review_on_edit)
        edit.addWidget(self.review_on_edit, 4, 0, 1, 2)
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
        self.window_preset.setToolTip("Window/level presets; right-drag on the image sets it (shown on the image)")
        self.display_combo = QComboBox()
        self.display_combo.addItems([SHOW[d] for d in DISPLAYS])
        self.display_combo.setToolTip("Your annotation is drawn solid, the model's prediction lighter with an outline, "
                             "background you painted dark. " + actions.cycle_display.toolTip())
        self.display_combo.activated.connect(lambda i: self.tools.set_overlay(display=DISPLAYS[i]))
        form.addRow(self.visible, self.outline)
        form.addRow("Show", self.display_combo)
        form.addRow("Opacity", self.opacity)
        form.addRow("Window", self.window_preset)
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

    def _on_review_on_edit_toggled(self, on: bool) -> None:
        if self._actions.review_on_edit.isChecked() != on:
            self._actions.review_on_edit.trigger()  # as the menu's item: checks it and tells the session

    def _show_review_on_edit(self, on: bool) -> None:
        with QSignalBlocker(self.review_on_edit):
            self.review_on_edit.setChecked(on)

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
