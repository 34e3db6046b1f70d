"""The uncertainty overlay, the slider strip and "Next slice to correct" (N) in the window."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from conftest import phantom_hu
from unetgui.core.ranking import slice_scores
from unetgui.core.volume import Volume


def _segmented(window):  # noqa: F811
    """A volume 'segmented' with a known uncertainty: slice 6 very unsure, slice 2 somewhat, others sure."""
    s = window.session
    s.open(Volume(phantom_hu((10, 64, 80)), np.diag([0.8, 0.8, 2.0, 1.0]), "CT"))
    labels = np.zeros((10, 64, 80), np.uint8)
    labels[:, 20:40, 20:50] = 1
    u = np.zeros((10, 64, 80), np.uint8)
    u[:, 19:41, 19:51] = 20  # a thin uncertain rim everywhere
    u[6, 20:40, 20:50] = 250
    u[2, 25:35, 25:45] = 200
    s.apply_prediction(list(range(10)), labels, u, slice_scores(u, labels))
    return s


def test_next_slice_to_correct_jumps_to_the_top_ranked_unreviewed_slice(window, qtbot):  # noqa: F811
    s = _segmented(window)
    s.set_slice(0)
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_N)
    assert s.current_slice == 6 == s.suggestions(1)[0].slice
    assert "Slice 7" in window.statusBar().currentMessage()
    s.set_reviewed(6)  # corrected: N goes on to the next candidate
    qtbot.keyClick(window.view, Qt.Key.Key_N)
    assert s.current_slice == 2


def test_next_plane_to_correct_in_the_sagittal_view_is_a_sagittal_plane(window, qtbot):  # noqa: F811
    s = _segmented(window)
    s.uncertainty[:, :, 44] = 255  # one sagittal plane the model is very unsure of
    s.apply_prediction(list(range(10)), s.labels.labels.copy(), s.uncertainty.copy(), slice_scores(s.uncertainty, s.labels.labels))
    window.view.set_plane("sagittal")
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_N)
    assert s.axis == 2 and s.index == 44 and "Sagittal plane 45" in window.statusBar().currentMessage()
    s.set_reviewed(44, axis=2)
    qtbot.keyClick(window.view, Qt.Key.Key_N)
    assert s.index != 44 and s.axis == 2


def test_uncertainty_heat_map_toggles_with_u_and_shows_a_legend(window, qtbot):  # noqa: F811
    s = _segmented(window)
    s.set_slice(6)
    assert not window.view.heat.isVisible()
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_U)
    assert window.actions.uncertainty.isChecked() and window.view.heat.isVisible() and window.view.legend.isVisible()
    shown = window.view.heat.image
    assert shown.shape == (64, 80) and shown.max() == 250  # the current slice's uncertainty (axial)
    view = window.view  # drawn exactly over the image (not scaled by its own pixel count)
    assert view.heat.mapRectToScene(view.heat.boundingRect()) == view.image.mapRectToScene(view.image.boundingRect())
    window.view.set_plane("coronal")
    assert view.heat.image.shape == view.image.image.shape
    assert view.heat.mapRectToScene(view.heat.boundingRect()) == view.image.mapRectToScene(view.image.boundingRect())
    assert window.slider.slider.scores.size == 0  # the strip scores axial slices: not drawn under coronal planes
    window.view.set_plane("axial")
    assert np.isfinite(window.slider.slider.scores).all() and window.slider.slider.scores.argmax() == 6
    qtbot.keyClick(window.view, Qt.Key.Key_U)
    assert not window.view.heat.isVisible() and not window.view.legend.isVisible()


def test_segmentation_fills_the_uncertainty_and_the_ranking(window, qtbot):  # noqa: F811
    from engine_fixtures import tiny_checkpoint

    s = window.session
    s.open(Volume(phantom_hu((12, 64, 64)), np.diag([0.8, 0.8, 2.0, 1.0]), "CT"))
    window.models.set_model(tiny_checkpoint())
    window.models.segment()
    qtbot.waitUntil(lambda: not window.models.busy_segmenting, timeout=60_000)
    assert s.uncertainty is not None and s.uncertainty.shape == s.volume.shape
    assert np.isfinite(s.slice_scores).all() and len(s.suggestions()) == 12


def test_u_before_a_segmentation_says_what_to_do_and_pins_nothing(window, qtbot):  # noqa: F811
    window.session.open(Volume(phantom_hu((10, 64, 80)), np.diag([0.8, 0.8, 2.0, 1.0]), "CT"))
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_U)
    assert not window.actions.uncertainty.isChecked() and not window.view.legend.isVisible()
    assert "segment the volume first" in window.statusBar().currentMessage()


def test_the_uncertainty_map_is_off_for_the_next_image_and_looks_like_no_label(window, qtbot):  # noqa: F811
    from unetgui.core.volume import default_color
    from unetgui.ui.view_overlays import HEAT_LUT

    _segmented(window)
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_U)
    assert window.view.heat.isVisible()
    shown = window.view.heat.image
    assert (shown[0::2, 1::2] == 0).all() and shown.max() > 0  # a stipple, not a fill
    window.session.open(Volume(phantom_hu((8, 32, 32)), np.eye(4), "CT"))
    assert not window.tools.uncertainty_visible and not window.actions.uncertainty.isChecked()
    assert not window.view.heat.isVisible() and not window.view.legend.isVisible()
    assert (HEAT_LUT[:, 0] == HEAT_LUT[:, 1]).all() and (HEAT_LUT[:, 1] == HEAT_LUT[:, 2]).all()  # no hue
    for value in range(1, 13):  # every label colour is a saturated hue
        rgb = np.asarray(default_color(value), float)
        assert (rgb.max() - rgb.min()) / rgb.max() > 0.4
