"""The real window, offscreen, driven by mouse and key events: painting, erasing, undo/redo, fill holes,
threshold brush, scrolling, and opening a DICOM series through the dialog code path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import phantom_hu
from gui_helpers import _drag, _line, _open_phantom, _widget_point
from unetgui.core.volume import Volume

pytestmark = pytest.mark.gui


def test_brush_stroke_paints_the_expected_pixels_of_the_active_label(window, qtbot):
    _open_phantom(window, qtbot)
    window.tools.tool = "brush"
    window.tools.brush_size = 6
    z = window.session.current_slice
    _drag(qtbot, window.view, _line(window.view, 30, 20, 50))
    painted = window.session.labels.labels[z] == window.session.active_label
    yy, xx = np.mgrid[0:64, 0:80]
    distance = np.hypot(yy - 30, np.clip(xx, 20, 50) - xx)
    assert painted[distance <= 2.0].all()  # the whole path, no gaps
    assert not painted[distance > 3.6].any()  # nothing outside the brush (radius 3 px, a pixel of slack)
    assert np.array_equal(window.session.annotated[z], painted)  # the stroke's voxels are the annotation
    assert not window.session.reviewed[z]  # the rest of the slice is not (R marks it all, or review_on_edit)
    others = np.delete(window.session.labels.labels, z, axis=0)
    assert not others.any()


def test_eraser_undo_and_redo_via_keys(window, qtbot):
    from PySide6.QtCore import Qt

    _open_phantom(window, qtbot)
    z = window.session.current_slice
    qtbot.keyClick(window.view, Qt.Key.Key_B)  # the brush (the default tool only navigates)
    assert window.tools.tool == "brush"
    window.tools.brush_size = 10
    _drag(qtbot, window.view, _line(window.view, 30, 20, 50))
    painted = window.session.labels.labels.copy()
    qtbot.keyClick(window.view, Qt.Key.Key_E)
    assert window.tools.tool == "eraser"
    _drag(qtbot, window.view, _line(window.view, 30, 30, 40))
    erased = window.session.labels.labels.copy()
    assert (erased[z] == 1).sum() < (painted[z] == 1).sum() and erased[z, 30, 35] == 0
    qtbot.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(window.session.labels.labels, painted)
    qtbot.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not window.session.labels.labels.any() and not window.session.annotated.any()
    qtbot.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(window.session.labels.labels, erased)


def test_fill_holes_and_threshold_brush(window, qtbot):
    from PySide6.QtCore import Qt

    _open_phantom(window, qtbot)
    z = window.session.current_slice
    ring = np.zeros((64, 80), np.uint8)
    ring[10:40, 10:40] = 1
    ring[18:30, 18:30] = 0
    window.session.labels.labels[z] = ring
    qtbot.keyClick(window.view, Qt.Key.Key_F, Qt.KeyboardModifier.ShiftModifier)
    assert (window.session.labels.labels[z, 10:40, 10:40] == 1).all()
    window.session.labels.labels[:] = 0
    window.tools.tool = "brush"
    window.tools.brush_size = 40
    window.tools.set_threshold(True, 70, 200)
    image = window.session.volume.voxels[z]
    _drag(qtbot, window.view, _line(window.view, 32, 10, 70))
    painted = window.session.labels.labels[z] == 1
    assert painted.any() and (image[painted] >= 70).all() and (image[painted] <= 200).all()


def test_scrolling_changes_the_slice(window, qtbot):
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    _open_phantom(window, qtbot)
    start = window.session.current_slice
    target = window.view.viewport()
    centre = QPointF(target.width() / 2, target.height() / 2)
    wheel = QWheelEvent(centre, QPointF(target.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(target, wheel)
    assert window.session.current_slice == start + 1
    qtbot.keyClick(window.view, Qt.Key.Key_PageDown)
    qtbot.keyClick(window.view, Qt.Key.Key_PageDown)
    assert window.session.current_slice == start - 1
    assert window.slider.slider.value() == start - 1


def test_physical_aspect_ratio(window, qtbot):
    _open_phantom(window, qtbot, spacing=(2.0, 0.5, 1.0))  # rows 0.5 mm, columns 1 mm
    rect = window.view.image.mapRectToView(window.view.image.boundingRect())
    assert rect.width() == pytest.approx(80 * 1.0) and rect.height() == pytest.approx(64 * 0.5)
    window.view.set_plane("coronal")
    assert window.view.image.image.shape == (10, 80)


def test_opening_a_dicom_series_through_the_dialog(window, qtbot, tmp_path):
    from unetgui.formats.dicom.writer import SeriesSpec, write_series

    hu = phantom_hu((9, 48, 40))
    write_series(hu, str(tmp_path / "dicom"), SeriesSpec(slice_spacing=2.5, series_description="phantom"))
    dialog = window.io.open_dicom_folder(str(tmp_path / "dicom"))
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=30_000)
    assert dialog.table.item(0, 3).text() == "phantom" and dialog.table.item(0, 4).text() == "9"
    dialog.accept()
    qtbot.waitUntil(lambda: window.session.is_open, timeout=30_000)
    assert np.array_equal(window.session.volume.voxels, hu)
    assert window.view.isVisible() and window.view.image.image.shape == (48, 40)
    assert window.io.recent()[0].endswith("dicom")


def test_a_bad_file_gives_an_error_dialog_and_keeps_the_document(window, qtbot, tmp_path):
    _open_phantom(window, qtbot)
    before = window.session.volume
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"garbage")
    window.io.open_path(str(bad))
    qtbot.waitUntil(lambda: bool(window.io.last_error), timeout=30_000)
    assert "broken.nii.gz" in window.io.last_error and window.session.volume is before


def test_shortcuts_are_listed(window, qtbot):
    rows = dict(window.actions.listing())
    for name in ("Undo", "Brush", "Eraser", "Fill holes", "Interpolate", "Reviewed", "Show labels", "Smaller brush"):
        assert rows[name]
    window.actions.shortcuts.trigger()
    assert window.shortcuts_dialog.isVisible()


def test_label_table_add_rename_hide_and_window_level(window, qtbot):
    from PySide6.QtCore import Qt

    from unetgui.ui.label_panel import LabelPanel

    _open_phantom(window, qtbot)
    panel = window.findChild(LabelPanel)
    panel._on_add_clicked()
    assert window.session.table.values == (1, 2) and window.session.active_label == 2
    panel.table.item(1, 1).setText("tumour")
    assert window.session.table.get(2).name == "tumour"
    coded = window.session.table.get(1)
    window.session.update_label(dataclasses.replace(coded, codes=(("category", "SCT", "85756007", "Tissue"),
                                                                  ("type", "SCT", "51114001", "Artery"))))
    assert panel.table.item(0, 1).toolTip().startswith("Coded as Artery (SCT 51114001), category Tissue")
    panel.table.item(0, 1).setText("hepatic artery")  # a new name: the codes of the old one go
    assert window.session.table.get(1).name == "hepatic artery" and window.session.table.get(1).codes == ()
    assert "by its name" in panel.table.item(0, 1).toolTip()
    panel.table.item(1, 0).setCheckState(Qt.CheckState.Unchecked)
    assert window.tools.hidden_labels == {2} and window.view._lut[2, 3] == 0 and window.view._lut[1, 3] > 0
    panel.table.selectRow(0)
    assert window.session.active_label == 1
    window.view.set_window(150, 30)
    assert window.view.image.levels.tolist() == [-45, 105]
    before = window.view.window
    centre = window.view.viewport().rect().center()
    _drag(qtbot, window.view, [centre, centre + centre * 0.1, centre + centre * 0.3], Qt.MouseButton.RightButton)
    assert window.view.window != before  # right drag changed window/level, and painted nothing
    assert not window.session.labels.labels.any()


def test_status_bar_shows_voxel_position_and_value(window, qtbot):
    _open_phantom(window, qtbot)
    point = _widget_point(window.view, 20, 30)
    window.view._on_mouse_moved(window.view.mapToScene(point))
    z = window.session.current_slice
    text = window.position.text()
    assert f"voxel (x 30, y 20, z {z})" in text
    assert f"value {window.session.volume.voxels[z, 20, 30]:g} HU" in text and "mm" in text


def test_dropping_a_file_opens_it(window, qtbot, tmp_path):
    import nibabel as nib
    from PySide6.QtCore import QMimeData, QUrl

    path = tmp_path / "dropped.nii.gz"
    nib.save(nib.Nifti1Image(np.full((16, 12, 5), 7, np.int16), np.eye(4)), str(path))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])

    class Drop:
        def mimeData(self):
            return mime

    window.dropEvent(Drop())
    qtbot.waitUntil(lambda: window.session.is_open, timeout=30_000)
    assert window.session.volume.shape == (5, 12, 16)


def test_every_action_is_harmless_with_nothing_open(window, qtbot):
    from PySide6.QtGui import QAction

    skip = {"open_dicom", "open_nifti", "open_labels", "quit", "open_model", "save_model", "shortcuts", "about",
            "new_project", "open_project", "save_project_as", "sample"}  # file dialogs, or a real open
    for name, action in vars(window.actions).items():
        if isinstance(action, QAction) and name not in skip:
            action.trigger()  # must neither raise nor open a modal dialog
    from unetgui.ui.label_panel import LabelPanel

    window.findChild(LabelPanel)._on_add_clicked()
    assert not window.session.is_open


def test_a_plane_change_mid_drag_still_ends_the_stroke(window, qtbot):
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    _open_phantom(window, qtbot)
    window.tools.tool = "brush"  # B: the default tool only navigates
    z = window.session.current_slice
    target = window.view.viewport()
    points = _line(window.view, 30, 20, 40, n=6)

    def send(kind, p, button, buttons):
        QApplication.sendEvent(target, QMouseEvent(kind, QPointF(p), QPointF(target.mapToGlobal(p)), button, buttons,
                                                   Qt.KeyboardModifier.NoModifier))

    left = Qt.MouseButton.LeftButton
    send(QEvent.Type.MouseButtonPress, points[0], left, left)
    for p in points[1:4]:
        send(QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, left)
    window.actions.coronal.trigger()  # the user presses 2 while dragging
    for p in points[4:]:
        send(QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, left)
    send(QEvent.Type.MouseButtonRelease, points[-1], left, Qt.MouseButton.NoButton)
    assert window.session.labels.labels[z].any() and window.session.annotated[z].any()
    assert window.session.history.can_undo() and window.session._stroke is None


def test_results_for_a_replaced_document_are_dropped(window, qtbot, monkeypatch):
    import time as _time
    from types import SimpleNamespace

    from unetgui.engine import inference
    from unetgui.engine.inference import SliceBatch

    _open_phantom(window, qtbot)

    class SlowPredictor:
        def __init__(self, *args, **kwargs):
            self.device_name, self.notes = "fake", []

        def run(self, voxels, slices, cancel):
            for i, z in enumerate(slices):
                _time.sleep(0.05)
                yield SliceBatch((z,), np.ones((1, *voxels.shape[1:]), np.uint8), np.zeros((1, 2, 1, 1), np.uint8),
                                 i + 1, len(slices), 0.0)

    monkeypatch.setattr(inference, "Predictor", SlowPredictor)
    window.models.checkpoint = SimpleNamespace(info={})  # any model: the predictor above ignores it
    volume = window.session.volume
    window.models.segment()
    qtbot.waitUntil(lambda: window.session.labels.labels.any(), timeout=10_000)
    window.session.open(volume)  # e.g. File > Open labels on the same image while segmenting
    qtbot.waitUntil(lambda: not window.models.busy_segmenting, timeout=10_000)
    assert not window.session.labels.labels.any()  # the old run's later batches were not applied



@pytest.mark.parametrize("ras", [False, True])
def test_display_is_radiological_for_dicom_and_ras_volumes(window, qtbot, ras):
    """Anterior up and patient right on screen left, whatever the array order; painting still lands on
    the voxel under the cursor."""
    hu = phantom_hu((6, 40, 50))
    affine = np.diag([0.8, 0.8, 2.0, 1.0]) if ras else np.diag([-0.8, -0.8, 2.0, 1.0])  # RAS NIfTI / DICOM
    window.session.open(Volume(hu, affine, "CT"))
    window.view._reset_geometry()
    shown = window.view.image.image
    z = window.session.current_slice
    expected = hu[z][::-1, ::-1] if ras else hu[z]
    assert np.array_equal(shown, expected)
    window.tools.tool, window.tools.brush_size = "brush", 1
    _drag(qtbot, window.view, [_widget_point(window.view, 10, 12)] * 2)  # a click: one dab
    assert window.session.labels.labels[z, 10, 12] == 1 and window.session.labels.labels[z].sum() <= 5
    window.view._on_mouse_moved(window.view.mapToScene(_widget_point(window.view, 10, 12)))
    assert "voxel (x 12, y 10," in window.position.text()


def test_nothing_here_is_one_key_and_shows_on_the_slider(window, qtbot):
    from PySide6.QtCore import Qt

    _open_phantom(window, qtbot)
    window.tools.tool = "brush"  # B: the default tool only navigates
    z = window.session.current_slice
    window.tools.brush_size = 10
    _drag(qtbot, window.view, _line(window.view, 30, 20, 50))
    assert not window.session.reviewed[z] and window.slider.label.text().endswith("strokes")
    assert window.slider.slider.strokes[z] and not window.slider.slider.empty[z]
    qtbot.keyClick(window.view, Qt.Key.Key_X)
    assert not window.session.labels.labels[z].any() and window.session.reviewed[z]
    assert window.slider.slider.empty[z] and window.slider.label.text().endswith("nothing here")
    _drag(qtbot, window.view, _line(window.view, 30, 20, 50))  # painting again: a reviewed slice with a label
    assert not window.slider.slider.empty[z] and window.slider.label.text().endswith("reviewed")
    assert window.session.reviewed[z]  # a stroke never takes a review back


def test_a_first_click_on_a_new_image_paints_nothing(window, qtbot):
    """As a user explores a fresh image: the default tool navigates, so a click and a drag change no label and
    mark nothing reviewed (B picks the brush)."""
    _open_phantom(window, qtbot)
    s = window.session
    assert window.tools.tool == "navigate" and window.actions.navigate.isChecked()
    _drag(qtbot, window.view, [_widget_point(window.view, 30, 30)] * 2)  # a click
    _drag(qtbot, window.view, _line(window.view, 30, 20, 50))  # a drag
    assert not s.labels.labels.any() and not s.reviewed.any() and not s.history.can_undo()
    window.actions.brush.trigger()
    _drag(qtbot, window.view, [_widget_point(window.view, 30, 30)] * 2)
    assert s.labels.labels.any() and s.annotated[s.index].any() and not s.reviewed.any()


def test_a_drag_going_on_while_another_image_opens_paints_nothing_on_it(window, qtbot):
    """Found in review: the view's last point survived Session.open, so the drag went on over the new image."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    _open_phantom(window, qtbot)
    window.actions.brush.trigger()
    view, target = window.view, window.view.viewport()

    def send(kind, p, buttons):
        QApplication.sendEvent(target, QMouseEvent(kind, QPointF(p), QPointF(target.mapToGlobal(p)),
                                                   Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else
                                                   Qt.MouseButton.NoButton, buttons, Qt.KeyboardModifier.NoModifier))

    points = [_widget_point(view, 30, c) for c in range(10, 40, 3)]
    send(QEvent.Type.MouseButtonPress, points[0], Qt.MouseButton.LeftButton)
    for p in points[1:5]:
        qtbot.wait(12)
        send(QEvent.Type.MouseMove, p, Qt.MouseButton.LeftButton)
    window.session.open(Volume(phantom_hu((10, 64, 80), seed=3), np.diag([0.8, 0.8, 2.0, 1.0]), "CT"))  # another image
    for p in points[5:]:
        qtbot.wait(12)
        send(QEvent.Type.MouseMove, p, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)
    assert not window.session.labels.labels.any() and not window.session.reviewed.any()
