"""The segment-and-train panel as a new user meets it on a 1280 x 800 screen: the actions first and always in
sight, the training settings under "Advanced" until an image is open (or as the user left them), no curves
before a training run, and no button text cut in a left dock 300 to 380 px wide."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QAbstractButton, QDockWidget, QScrollArea

from gui_helpers import _open_phantom

pytestmark = [pytest.mark.gui]


def _laptop(window, qtbot, dock_width: int | None = None):
    """The window at 1280 x 800 (the left dock at ``dock_width`` px when given); returns the panel."""
    window.resize(1280, 800)
    if dock_width is not None:
        dock = next(d for d in window.findChildren(QDockWidget) if d.windowTitle() == "Segment and train")
        window.resizeDocks([dock], [dock_width], Qt.Orientation.Horizontal)
    qtbot.wait(50)
    return window.training_panel


def _shown_width(widget) -> int:
    """How much of ``widget``'s width is on screen: its containers (a scrolled dock's viewport) clip the rest."""
    left, right, child = 0, widget.width(), widget
    while not child.isWindow():
        left, right = left + child.x(), right + child.x()
        child = child.parentWidget()
        left, right = max(left, 0), min(right, child.width())
    return max(right - left, 0)


def _cut(panel) -> list[tuple[str, int, int]]:
    """Visible buttons whose text does not fit in what is shown of them: (text, needed px, shown px)."""
    cut = []
    for button in panel.findChildren(QAbstractButton):
        need = button.fontMetrics().horizontalAdvance(button.text()) + 24
        if button.isVisible() and button.text() and need > _shown_width(button):
            cut.append((button.text(), need, _shown_width(button)))
    return cut


def _top(widget, panel) -> int:
    return widget.mapTo(panel, QPoint(0, 0)).y()


def test_before_an_image_the_actions_lead_and_the_settings_wait_under_advanced(window, qtbot):  # noqa: F811
    panel = _laptop(window, qtbot)
    dock = panel.parentWidget()
    while not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    assert window.size().width() == 1280 and 300 <= dock.width() <= 380
    assert panel.advanced.isVisible() and not panel.advanced.isChecked() and not panel.settings.isVisible()
    assert not panel.minutes.isVisible() and not panel.curves.isVisible() and not panel.loss_plot.isVisible()
    assert not panel.evaluate_button.isVisible() and not panel.counts.isVisible()  # nothing to evaluate or count
    actions = (panel.segment_volume, panel.train_button, panel.cancel_segment)
    assert all(b.isVisible() for b in actions)
    assert max(_top(b, panel) for b in actions) < min(_top(w, panel) for w in (panel.advanced, panel.card))
    assert not _cut(panel)


def _everything_shown(window, qtbot) -> None:
    """An image, a model and a training run: every part of the panel is shown."""
    from engine_fixtures import tiny_checkpoint

    _open_phantom(window, qtbot)
    window.models.set_model(tiny_checkpoint())
    window.models.training_started.emit()  # what a training run shows: the curves
    qtbot.wait(50)
    panel = window.training_panel
    assert panel.settings.isVisible() and panel.curves.isVisible() and panel.evaluate_button.isVisible()


def test_the_actions_stay_in_sight_with_the_panel_scrolled_to_its_end(window, qtbot):  # noqa: F811
    panel = _laptop(window, qtbot, 300)
    _everything_shown(window, qtbot)
    scroll = panel.findChild(QScrollArea)
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0  # settings, curves, model and evaluation do not fit: they scroll
    bar.setValue(bar.maximum())
    qtbot.wait(20)
    assert panel.evaluate_button.visibleRegion().boundingRect().height() > 0
    for button in (panel.segment_volume, panel.train_button, panel.cancel_segment):
        assert button.visibleRegion().boundingRect().size() == button.size(), button.text()


@pytest.mark.parametrize("dock_width", [300, 380])
def test_no_button_text_is_cut_in_a_laptops_left_dock(window, qtbot, dock_width):  # noqa: F811
    panel = _laptop(window, qtbot, dock_width)
    assert not _cut(panel)
    _everything_shown(window, qtbot)
    assert abs(panel.width() - dock_width) < 40
    assert not _cut(panel)


def test_an_image_shows_the_settings_unless_the_user_folded_them(window, qtbot):  # noqa: F811
    panel = _laptop(window, qtbot)
    _open_phantom(window, qtbot)
    assert panel.advanced.isChecked() and panel.settings.isVisible() and panel.minutes.isVisible()
    assert not panel.curves.isVisible()  # no training run yet
    qtbot.mouseClick(panel.advanced, Qt.MouseButton.LeftButton)  # the user folds them
    assert not panel.settings.isVisible()
    _open_phantom(window, qtbot)  # the next image keeps them folded
    assert not panel.advanced.isChecked() and not panel.settings.isVisible()


def test_settings_opened_before_an_image_stay_open(window, qtbot):  # noqa: F811
    panel = _laptop(window, qtbot)
    qtbot.mouseClick(panel.advanced, Qt.MouseButton.LeftButton)
    assert panel.settings.isVisible() and panel.minutes.isVisible()
    _open_phantom(window, qtbot)
    window.session.close()  # e.g. an empty project: still as the user left them
    qtbot.wait(20)
    assert panel.advanced.isChecked() and panel.settings.isVisible()
