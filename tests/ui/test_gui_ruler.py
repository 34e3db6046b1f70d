"""The ruler (D) in the real window: a drag measures a distance in mm on the shown plane, in-plane and across thick
slices alike, drawn with its length on that plane only; a click takes it away; painting is untouched."""

from __future__ import annotations

import numpy as np
import pytest

from gui_helpers import _drag, _open_phantom, _widget_point

pytestmark = pytest.mark.gui


def test_a_drag_with_the_ruler_measures_millimetres_on_its_plane(window, qtbot):
    from PySide6.QtCore import Qt

    _open_phantom(window, qtbot)  # 0.8 x 0.8 mm pixels, 2 mm slices
    view, s = window.view, window.session
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    before = s.labels.labels.copy()
    qtbot.keyClick(view, Qt.Key.Key_D)
    assert window.tools.tool == "ruler" and window.actions.ruler.isChecked()
    s.set_slice(4)
    _drag(qtbot, view, [_widget_point(view, 20, c) for c in np.linspace(10, 40, 8)], pace_ms=12)
    ruler = window.tools.ruler
    assert ruler is not None and ruler.axis == 0 and ruler.index == 4
    # 30 pixels along a row (the mouse lands on whole screen pixels: within a fifth of an image pixel)
    length = ruler.length_mm(s.volume.affine)
    assert length == pytest.approx(30 * 0.8, abs=0.16)
    assert view.ruler.shown and view.ruler.text.toPlainText() == f"{length:.1f} mm"
    assert np.array_equal(s.labels.labels, before)  # measuring paints nothing
    qtbot.keyClick(view, Qt.Key.Key_Up)  # another slice: not drawn there
    assert not view.ruler.shown
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.ruler.shown

    # across the slices on a coronal plane: rows are 2 mm apart
    qtbot.keyClick(view, Qt.Key.Key_2)
    qtbot.waitUntil(lambda: view.plane == "coronal", timeout=5_000)
    _drag(qtbot, view, [_widget_point(view, r, 30) for r in np.linspace(2, 7, 6)], pace_ms=12)
    ruler = window.tools.ruler
    length = ruler.length_mm(s.volume.affine)
    assert ruler.axis == 1 and length == pytest.approx(5 * 2.0, abs=0.4)
    assert view.ruler.shown and view.ruler.text.toPlainText() == f"{length:.1f} mm"
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(view, 5, 10))
    qtbot.waitUntil(lambda: window.tools.ruler is None, timeout=5_000)  # a click takes it away
    assert not view.ruler.shown
    qtbot.keyClick(view, Qt.Key.Key_B)  # and the brush still paints
    assert window.tools.tool == "brush"


def test_a_ruler_measures_in_world_mm_on_an_oblique_grid():
    from unetgui.ui.calipers import Ruler

    angle = np.deg2rad(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 0.9, 3.0])
    affine[:3, 3] = (-100, 20, 55)
    # on a sagittal plane (array axis 2): rows are z, columns y; 4 slices down and 10 rows across
    ruler = Ruler(axis=2, index=17, start=(1.0, 5.0), end=(5.0, 15.0))
    assert ruler.voxels() == [(1.0, 5.0, 17.0), (5.0, 15.0, 17.0)]
    assert ruler.length_mm(affine) == pytest.approx(np.hypot(4 * 3.0, 10 * 0.9))
