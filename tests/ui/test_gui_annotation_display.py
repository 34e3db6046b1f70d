"""Corrective annotation as the user sees it: the background brush paints "none of the labels" with real mouse
events, and the overlay tells the user's annotation (solid) from the model's prediction (lighter, outlined) and
shades background the strokes annotated; the Show combo (and A) shows either alone; the panel's Background
button and "Edits mark the plane reviewed" checkbox follow their actions. Also the pure composition
(view_overlays.overlay_rgba) on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from gui_helpers import _drag, _line, _open_phantom, _widget_point
from unetgui.ui.view_overlays import BACKGROUND_EDGE_RGB, PREDICTION_FILL, overlay_rgba

pytestmark = pytest.mark.gui

RED, GREEN = (230, 40, 40), (40, 200, 60)


def _colors(hidden=()):
    colors = np.zeros((256, 4), np.uint8)
    colors[1] = (*RED, 255)
    colors[2] = (*GREEN, 255)
    for value in hidden:
        colors[value, 3] = 0
    return colors


def _scene():
    """A 20 x 24 plane: label 1 in rows 2..9 (the left half the user's annotation, the right half predicted),
    background annotated by a stroke in rows 10..14, label 2 predicted in rows 15..18, 255 in a corner."""
    labels = np.zeros((20, 24), np.uint8)
    labels[2:10, 2:22] = 1
    labels[15:19, 4:20] = 2
    labels[0, 0] = 255
    truth = np.zeros(labels.shape, bool)
    truth[:, :12] = True
    marked = np.zeros(labels.shape, bool)
    marked[10:15, 4:20] = True
    truth |= marked
    return labels, truth, marked


def test_overlay_rgba_fills_the_annotation_solid_the_prediction_light_and_outlined_and_shades_background():
    labels, truth, marked = _scene()
    out = overlay_rgba(labels, truth, _colors(), 0.6, background=marked)
    solid, light = round(255 * 0.6), round(255 * 0.6 * PREDICTION_FILL)
    assert out.shape == (20, 24, 4) and out.dtype == np.uint8
    assert tuple(out[6, 6]) == (*RED, solid)  # annotation: solid, the label's colour
    assert tuple(out[6, 16]) == (*RED, light)  # prediction inside: lighter
    assert tuple(out[2, 16]) == (*RED, 255) and tuple(out[9, 16]) == (*RED, 255)  # its rim at full strength
    assert tuple(out[6, 12]) == (*RED, 255)  # where the user's correction begins, the prediction is outlined too
    assert tuple(out[2, 6]) == (*RED, solid)  # the annotation has no rim
    assert tuple(out[16, 16]) == (*GREEN, light)
    shade, edge = out[11:14, 5:19].reshape(-1, 4), out[10, 4]
    assert (shade[:, :3] == shade[:, :1]).all()  # hue-free
    assert (out[12, 8, :3] < 60).all() and out[12, 8, 3] > 0  # dark
    assert tuple(edge) == (*BACKGROUND_EDGE_RGB, 255)
    assert out[0, 0, 3] == 0 and out[19, 0, 3] == 0  # 255 ("not annotated") and 0 are transparent
    assert out[1, 1, 3] == 0  # annotated 0 outside the marked background: a reviewed plane's 0 is not shaded


def test_overlay_rgba_display_modes_outline_hidden_labels_and_opacity():
    labels, truth, marked = _scene()
    annotation = overlay_rgba(labels, truth, _colors(), 0.6, "annotation", background=marked)
    assert annotation[6, 6, 3] > 0 and annotation[6, 16, 3] == 0 and annotation[2, 16, 3] == 0
    assert annotation[16, 16, 3] == 0 and annotation[12, 8, 3] > 0  # background annotated is annotation
    prediction = overlay_rgba(labels, truth, _colors(), 0.6, "prediction", background=marked)
    assert prediction[6, 6, 3] == 0 and prediction[6, 16, 3] > 0 and prediction[2, 16, 3] == 255
    assert prediction[12, 8, 3] == 0 and prediction[10, 4, 3] == 0
    outline = overlay_rgba(labels, truth, _colors(), 0.6, outline=True, background=marked)
    assert outline[6, 6, 3] == 0 and outline[6, 16, 3] == 0 and outline[12, 8, 3] == 0  # no fills
    assert (outline[2, 2:11, 3] == 255).all()  # the annotation's rim: solid
    rim = outline[2, 13:21, 3]
    assert (rim == 255).any() and (rim == 0).any()  # the prediction's: dashed
    assert tuple(outline[10, 4]) == (*BACKGROUND_EDGE_RGB, 255)
    hidden = overlay_rgba(labels, truth, _colors(hidden=(2,)), 0.6, background=marked)
    assert hidden[15:19, 4:20, 3].max() == 0 and hidden[6, 6, 3] > 0
    none = overlay_rgba(labels, truth, _colors(), 0.0, background=marked)
    assert none[..., 3].max() == 0  # opacity 0: nothing


def _pixel(view, row, col):
    """The overlay's RGBA at section pixel (row, col) of the shown plane."""
    r, c = view._to_display(row, col)
    return tuple(int(v) for v in view.overlay.image[int(r), int(c)])


def _predicted(window, qtbot):
    """The phantom with a prediction of label 1 (rows 10..49, columns 10..69) on the shown slice."""
    _open_phantom(window, qtbot)
    s = window.session
    z = s.current_slice
    prediction = np.zeros((1, 64, 80), np.uint8)
    prediction[0, 10:50, 10:70] = 1
    assert s.apply_prediction([z], prediction) == (z,)
    qtbot.wait(20)
    return s, z


def _panel(window):
    from unetgui.ui.tool_panel import ToolPanel

    return window.findChild(ToolPanel)


def test_strokes_on_a_prediction_show_annotation_solid_prediction_light_and_background_shaded(window, qtbot):
    from PySide6.QtCore import Qt

    s, z = _predicted(window, qtbot)
    view, panel = window.view, _panel(window)
    opacity = window.tools.opacity
    window.tools.brush_size = 6
    qtbot.mouseClick(panel.tool_buttons["Brush"], Qt.MouseButton.LeftButton)
    assert window.tools.tool == "brush"
    _drag(qtbot, view, _line(view, 25, 20, 40), pace_ms=12)  # the user confirms part of the prediction
    qtbot.mouseClick(panel.tool_buttons["Background"], Qt.MouseButton.LeftButton)
    assert window.tools.tool == "background" and window.actions.background.isChecked()
    _drag(qtbot, view, _line(view, 40, 20, 40), pace_ms=12)  # and says "not the structure" where the model was wrong
    labels = s.labels.labels[z]
    assert (labels[40, 22:39] == 0).all() and s.annotated[z, 40, 22:39].all()
    assert (labels[25, 22:39] == 1).all() and s.annotated[z, 25, 22:39].all()
    assert s.history._undo[-1].name == "background"  # the undo step is named after the tool
    color = s.table.get(1).color
    assert _pixel(view, 25, 30) == (*color, round(255 * opacity))  # the annotation: solid
    light = _pixel(view, 33, 60)
    assert light[:3] == color and 0 < light[3] < round(255 * opacity) / 2  # the prediction: lighter
    assert _pixel(view, 10, 60) == (*color, 255)  # with its outline at full strength
    shade = [_pixel(view, 39 + dr, c) for dr in range(3) for c in range(24, 37)]  # inside the stroke (6 px wide)
    assert all(p[0] == p[1] == p[2] and p[3] > 0 for p in shade)  # background the stroke annotated: no hue
    dark = [p for p in shade if p[0] < 60]
    assert len(dark) > len(shade) / 2  # a dark shade (hatched with grey)
    assert _pixel(view, 5, 5)[3] == 0  # untouched background: nothing drawn

    window.tools.set_overlay(display="annotation")
    assert _pixel(view, 33, 60)[3] == 0 and _pixel(view, 10, 60)[3] == 0
    assert _pixel(view, 25, 30)[3] > 0 and _pixel(view, 40, 30)[3] > 0
    assert panel.display_combo.currentText() == "Show annotation only"
    window.tools.set_overlay(display="prediction")
    assert _pixel(view, 25, 30)[3] == 0 and _pixel(view, 40, 30)[3] == 0 and _pixel(view, 33, 60)[3] > 0
    assert panel.display_combo.currentText() == "Show prediction only"
    window.actions.cycle_display.trigger()  # A: back to both
    assert window.tools.display == "both" and panel.display_combo.currentText() == "Show annotation and prediction"
    panel.display_combo.activated.emit(1)  # the user picks "Annotation only"
    assert window.tools.display == "annotation" and _pixel(view, 33, 60)[3] == 0
    panel.display_combo.activated.emit(0)

    window.tools.set_overlay(outline=True)
    assert _pixel(view, 25, 30)[3] == 0 and _pixel(view, 33, 60)[3] == 0  # outlines only
    window.tools.set_overlay(outline=False)
    window.tools.set_overlay(hidden={1})
    assert _pixel(view, 25, 30)[3] == 0 and _pixel(view, 33, 60)[3] == 0
    window.tools.set_overlay(hidden=set())

    s.set_reviewed(z, True)  # the whole slice becomes annotation: solid, and its 0s are not shaded
    assert _pixel(view, 33, 60) == (*color, round(255 * opacity)) and _pixel(view, 40, 30)[3] == 0
    s.set_reviewed(z, False)
    assert _pixel(view, 40, 30)[3] > 0
    for _ in range(3):  # undo the unreview, the review and the background stroke
        qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _pixel(view, 40, 30)[:3] == color and not s.annotated[z, 40, 30]


def test_the_background_brush_and_the_eraser_never_ask_a_label_name(window, qtbot):
    _open_phantom(window, qtbot)
    asked = []
    window.view.before_paint = lambda drag: (asked.append(drag), False)[1]
    s, view = window.session, window.view
    window.actions.background.trigger()
    assert view.can_paint() and view._brush().background
    _drag(qtbot, view, _line(view, 30, 20, 40), pace_ms=12)
    assert asked == [] and s.annotated[s.current_slice, 30, 30] and not s.labels.labels.any()
    window.actions.eraser.trigger()
    _drag(qtbot, view, _line(view, 30, 20, 40), pace_ms=12)
    assert asked == []
    window.actions.brush.trigger()
    _drag(qtbot, view, _line(view, 30, 20, 40), pace_ms=12)
    assert asked == [True] and not s.labels.labels.any()  # the brush asks (here: refused, nothing painted)


def test_the_background_cursor_and_the_edit_mode_checkbox_follow_their_actions(window, qtbot):
    from PySide6.QtCore import Qt

    _open_phantom(window, qtbot)
    view, s = window.view, window.session
    window.actions.background.trigger()
    view._on_mouse_moved(view.mapToScene(_widget_point(view, 30, 30)))
    assert view.cursor.isVisible() and view.cursor.pen().style() == Qt.PenStyle.DashLine
    window.actions.brush.trigger()
    view._on_mouse_moved(view.mapToScene(_widget_point(view, 30, 30)))
    assert view.cursor.isVisible() and view.cursor.pen().style() == Qt.PenStyle.SolidLine
    box = window.training_panel.review_on_edit  # beside the counts of what training learns from
    assert box.text() == "Edits mark the plane reviewed" and "ground truth" in box.toolTip() and box.isVisible()
    assert not box.isChecked() and not s.review_on_edit
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=box.rect().center())
    assert box.isChecked() and s.review_on_edit and window.actions.review_on_edit.isChecked()
    window.actions.review_on_edit.trigger()  # the menu's item
    assert not box.isChecked() and not s.review_on_edit
    s.set_review_on_edit(True)  # the session (a project's setting)
    assert box.isChecked()
