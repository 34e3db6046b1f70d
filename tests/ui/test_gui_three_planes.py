"""The linked three-plane layout: crosshair, clicks that move it, the edited plane, orientation letters from
the affine (real CT and a real sagittal MR), the overlays, go to label, the layout remembered."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from conftest import phantom_hu
from gui_helpers import _drag, _line, _widget_point
from unetgui.core.session import BrushSettings
from unetgui.core.volume import Volume

pytestmark = pytest.mark.gui


def _phantom(window, qtbot, shape=(10, 64, 80)):
    window.session.open(Volume(phantom_hu(shape), np.diag([0.8, 0.8, 2.0, 1.0]), "CT"))
    qtbot.wait(50)


def _three(window, qtbot):
    """Choose "Three planes" in the view bar as a user does."""
    window.plane.setCurrentIndex(3)
    window.plane.activated.emit(3)
    qtbot.wait(50)
    return window.planes.views


def _open_dicom(window, qtbot, folder) -> None:
    dialog = window.io.open_dicom_folder(str(folder))
    qtbot.waitUntil(lambda: dialog.table.rowCount() >= 1, timeout=30_000)
    dialog.accept()
    qtbot.waitUntil(lambda: window.session.is_open and not window.runner.busy, timeout=30_000)


def _letters(view) -> dict[str, str]:
    return {edge: label.text() for edge, label in view.letters.items()}


def test_three_planes_show_the_position_and_a_click_moves_the_other_two(window, qtbot):
    _phantom(window, qtbot)
    axial, coronal, sagittal = _three(window, qtbot)
    assert window.planes.isVisible() and not window.view.isVisible() and window.plane.currentText() == "Three planes"
    assert [v.image.image.shape for v in (axial, coronal, sagittal)] == [(64, 80), (10, 80), (10, 64)]
    labels_before = window.session.labels.labels.copy()
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(axial, 20, 30))  # Navigate: a look
    qtbot.wait(20)
    z = window.session.position[0]
    assert window.session.position == [z, 20, 30]
    assert np.array_equal(coronal.image.image, coronal.plane_data(window.session.volume.voxels))
    # a RAS phantom: head up (z flipped), patient right on the left (x flipped), anterior on the left (y flipped)
    assert np.array_equal(coronal.image.image[::-1, ::-1], window.session.volume.voxels[:, 20, :])
    assert np.array_equal(sagittal.image.image[::-1, ::-1], window.session.volume.voxels[:, :, 30])
    for view in (axial, coronal, sagittal):  # each crosshair passes through the position
        rows, cols = (k for k in range(3) if k != view.axis)
        centre = view.view_point(window.session.position[rows], window.session.position[cols])
        assert view.crosshair[0].isVisible() and view.crosshair[0].value() == pytest.approx(centre.x())
        assert view.crosshair[1].value() == pytest.approx(centre.y())
    qtbot.mouseClick(coronal.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(coronal, 7, 50))
    qtbot.wait(20)
    assert window.session.position == [7, 20, 50] and window.session.axis == 1  # the clicked view is edited
    assert np.array_equal(axial.image.image[::-1, ::-1], window.session.volume.voxels[7])
    assert window.planes.frames[1].styleSheet() != window.planes.frames[0].styleSheet()  # framed as the edited one
    assert np.array_equal(window.session.labels.labels, labels_before) and not window.session.reviewed.any()
    assert window.slider.slider.value() == 20  # the slider moves through the edited (coronal) planes


def test_a_stroke_in_the_sagittal_view_paints_its_plane_and_the_others_show_it(window, qtbot):
    _phantom(window, qtbot)
    axial, coronal, sagittal = _three(window, qtbot)
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(axial, 30, 40))
    window.tools.tool = "brush"
    _drag(qtbot, sagittal, _line(sagittal, 5, 20, 40), pace_ms=12)  # a hand's pace: a drag, not a click
    painted = np.argwhere(window.session.labels.labels == window.session.active_label)
    assert painted.size and set(painted[:, 2]) == {40}  # only the sagittal plane x = 40
    assert window.session.axis == 2 and window.session.annotated[:, :, 40].any()
    assert not window.session.annotated[:, :, np.arange(80) != 40].any()
    window.session.set_position([5, 30, 40])
    qtbot.wait(20)
    assert (axial.overlay.image > 0).any() and (coronal.overlay.image > 0).any()


def test_window_level_is_shared_and_drawn_on_every_view(window, qtbot):
    _phantom(window, qtbot)
    views = _three(window, qtbot)
    views[1].set_window(150, 30)
    assert all(v.image.levels.tolist() == [-45, 105] for v in views)
    assert all(v.levels.text() == "W 150  L 30" and v.levels.isVisible() for v in views)
    assert views[0].info.text().startswith("Axial 6 / 10") and "S " in views[0].info.text()


def test_letters_of_a_real_axial_ct_are_radiological(window, qtbot, data_dir):
    _open_dicom(window, qtbot, data_dir / "totalsegmentator-example-ct-dicom")
    axial, coronal, sagittal = _three(window, qtbot)
    assert _letters(axial) == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    assert _letters(coronal) == {"top": "S", "bottom": "I", "left": "R", "right": "L"}
    assert _letters(sagittal) == {"top": "S", "bottom": "I", "left": "A", "right": "P"}
    assert [window.plane.itemText(k) for k in range(3)] == ["Axial", "Coronal", "Sagittal"]


def test_a_sagittal_mr_shows_each_plane_by_its_anatomical_name_and_the_right_way_round(window, qtbot, data_dir):
    _open_dicom(window, qtbot, data_dir / "dicom2nifti-test-series" / "siemens" / "anatomical")
    views = _three(window, qtbot)
    names = [v.anatomical_plane() for v in views]
    assert names == ["sagittal", "axial", "coronal"]  # the stack is sagittal: array axis 0 runs right-left
    assert [window.plane.itemText(k) for k in range(3)] == ["Sagittal", "Axial", "Coronal"]
    expected = {"axial": ("A", "P", "R", "L"), "coronal": ("S", "I", "R", "L"), "sagittal": ("S", "I", "A", "P")}
    for view, name in zip(views, names):  # radiological convention in every plane, a transpose where needed
        letters = _letters(view)
        assert (letters["top"], letters["bottom"], letters["left"], letters["right"]) == expected[name], name
    window.set_three_planes(False)
    window.actions.axial.trigger()  # "1" shows the axial plane, which is array axis 1 here
    assert window.session.axis == 1 and window.view.info.text().startswith("Axial")
    view = window.view
    # a click hits the voxel drawn under it, through the transpose
    z, y, x = 2, 100, 60
    window.session.set_position([z, y, x])
    qtbot.wait(20)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(view, 2, 60))
    assert window.session.position == [2, 100, 60]


def test_go_to_label_centres_and_zooms_on_a_small_structure(window, qtbot):
    _phantom(window, qtbot, (10, 128, 160))
    views = _three(window, qtbot)
    s = window.session
    s.set_slice(7)
    s.set_axis(0)
    s.begin_stroke()
    s.paint_segment(100, 130, 100, 133, BrushSettings(radius=3))
    s.end_stroke()
    s.set_position([2, 10, 10])
    full = [v.vb.viewRange() for v in views]
    window.actions.go_to_structure.trigger()
    qtbot.wait(20)
    z, y, x = s.position
    assert z == 7 and abs(y - 100) <= 1 and 130 <= x <= 133 and s.labels.labels[z, y, x] == s.active_label
    for view, before in zip(views, full):
        (x0, x1), (y0, y1) = view.vb.viewRange()
        centre = view.view_point(*(s.position[k] for k in range(3) if k != view.axis))
        assert x0 < centre.x() < x1 and y0 < centre.y() < y1
        assert (x1 - x0) < 0.7 * (before[0][1] - before[0][0])  # zoomed in
    assert "Label 1" in window.statusBar().currentMessage()


def test_go_to_label_without_any_voxel_says_so(window, qtbot):
    _phantom(window, qtbot)
    window.actions.go_to_structure.trigger()
    assert "No voxel is labelled" in window.statusBar().currentMessage()


def test_the_layout_is_remembered_for_the_next_window(window, qtbot):
    from PySide6.QtCore import QSettings

    _phantom(window, qtbot)
    _three(window, qtbot)
    assert QSettings().value("view/three_planes", False, type=bool)
    window.plane.setCurrentIndex(1)
    window.plane.activated.emit(1)
    assert window.view.isVisible() and not window.planes.isVisible() and window.session.axis == 1
    assert window.view.image.image.shape == (10, 80)  # refitted to the coronal plane
    rect = window.view.image.mapRectToView(window.view.image.boundingRect())  # 64 x 20 mm
    (x0, x1), (y0, y1) = window.view.vb.viewRange()
    assert x0 <= rect.left() and rect.right() <= x1 and y0 <= rect.top() and rect.bottom() <= y1  # all of it in view
    assert min((x1 - x0) / rect.width(), (y1 - y0) / rect.height()) < 1.1  # and filling the view on one side
    assert not QSettings().value("view/three_planes", True, type=bool)
