"""The window on a 1280 x 800 laptop and a 1920 x 1080 screen: it fits, every visible button shows its whole
text (text width against the width its style gives the text), the primary actions are on screen, and a first
click on a new image changes no label and marks nothing reviewed."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QAbstractButton, QCheckBox, QPushButton, QRadioButton, QStyle, QStyleOptionButton

from gui_helpers import _widget_point

pytestmark = pytest.mark.gui

SCREENS = [(1280, 800), (1920, 1080)]


def text_room(button: QAbstractButton) -> int:
    """The width the button's style leaves for its text."""
    style = button.style()
    for kind, element in ((QPushButton, QStyle.SubElement.SE_PushButtonContents),
                          (QCheckBox, QStyle.SubElement.SE_CheckBoxContents),
                          (QRadioButton, QStyle.SubElement.SE_RadioButtonContents)):
        if isinstance(button, kind):
            option = QStyleOptionButton()
            option.initFrom(button)
            option.text = button.text()
            room = style.subElementRect(element, option, button).width()
            if kind is QPushButton:  # the text is drawn inside the contents less the button's margins
                room -= style.pixelMetric(QStyle.PixelMetric.PM_ButtonMargin, option, button)
            return room
    return button.width() - 6  # a tool button: a 3 px frame on each side


def cut_buttons(root) -> list[str]:
    """Visible buttons (in view: not scrolled away) whose text is wider than its room."""
    cut = []
    for button in root.findChildren(QAbstractButton):
        text = button.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
        if not text or not button.isVisible() or button.visibleRegion().isEmpty():
            continue
        need = button.fontMetrics().horizontalAdvance(text)
        if need > text_room(button):
            cut.append(f"{text!r}: {need} px of text in {text_room(button)} px")
        elif button.visibleRegion().boundingRect().width() < button.width():  # clipped at a side of its panel
            cut.append(f"{text!r}: {button.visibleRegion().boundingRect().width()} of {button.width()} px in view")
    return cut


def _on_screen(window, width, height):
    window.fit_screen(QRect(0, 0, width, height))
    window.move(0, 0)


@pytest.mark.parametrize("width,height", SCREENS)
def test_the_welcome_window_fits_and_cuts_no_button(window, qtbot, width, height):
    _on_screen(window, width, height)
    qtbot.wait(50)
    assert window.width() <= width and window.height() <= height
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 800
    assert cut_buttons(window) == []
    panel = window.training_panel
    for button in (panel.segment_volume, panel.train_button):  # the primary actions in view without scrolling
        assert button.isVisible() and not button.visibleRegion().isEmpty()


@pytest.mark.parametrize("width,height", SCREENS)
def test_a_real_ct_in_three_planes_fits_and_cuts_no_button(window, qtbot, data_dir, width, height):
    _on_screen(window, width, height)
    dialog = window.io.open_dicom_folder(str(data_dir / "totalsegmentator-example-ct-dicom"))
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=30_000)
    dialog.accept()
    qtbot.waitUntil(lambda: window.session.is_open and not window.runner.busy, timeout=30_000)
    window.set_three_planes(True)
    qtbot.wait(50)
    assert window.width() <= width and window.height() <= height
    assert cut_buttons(window) == []
    assert all(v.width() >= 150 and v.height() >= 150 for v in window.planes.views)  # three usable views
    tools = window.docks["Tools"].widget()
    assert not tools.verticalScrollBar().isVisible() or height < 1000  # a 1080p screen shows every tool at once
    for name in ("Segment volume", "Train"):
        button = next(b for b in window.training_panel.findChildren(QAbstractButton) if b.text() == name)
        assert not button.visibleRegion().isEmpty()
    axial, coronal, sagittal = window.planes.views  # the linked views follow a click at this size
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(axial, 300, 330))
    qtbot.wait(20)
    y, x = window.session.position[1:]  # a screen pixel covers about 1.4 image pixels at 1280 x 800
    assert abs(y - 300) <= 1 and abs(x - 330) <= 1 and (coronal.index, sagittal.index) == (y, x)
    assert np.array_equal(coronal.image.image, coronal.plane_data(window.session.volume.voxels))


@pytest.mark.parametrize("width,height", SCREENS)
def test_a_first_click_on_a_new_image_changes_no_label_and_marks_nothing(window, qtbot, data_dir, width, height):
    _on_screen(window, width, height)
    dialog = window.io.open_dicom_folder(str(data_dir / "dcmqi-ct-3slice-liver-seg" / "ct"))
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=30_000)
    dialog.accept()
    qtbot.waitUntil(lambda: window.session.is_open and not window.runner.busy, timeout=30_000)
    s = window.session
    before = s.labels.labels.copy()
    view = window.view if window.view.isVisible() else window.planes.views[0]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(view, 256, 200))
    qtbot.wait(20)
    assert np.array_equal(s.labels.labels, before) and not s.reviewed.any()
    assert not s.reviewed_coronal.any() and not s.reviewed_sagittal.any() and not s.history.can_undo()
