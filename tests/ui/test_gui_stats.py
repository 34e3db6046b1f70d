"""The Statistics dock (issue 27) in the real window: opened as a user opens it (View > Statistics panel, key M), it
measures every label as ``document_statistics`` does, follows a brush stroke painted with the mouse without
blocking the window, moves the app to the slice clicked on its plot, saves its CSV, and shows HU for the sample."""

from __future__ import annotations

import csv
import io
import threading

import numpy as np
import pytest

from gui_helpers import _drag, _line, _open_phantom, _paint
from unetgui.core.volume import Label, LabelMap, LabelTable, Volume

pytestmark = pytest.mark.gui

WAIT_MS = 30_000


def _labelled_phantom(window, qtbot) -> None:
    """The phantom with two labels (the bright blob, a box) and an empty third one in the table."""
    _open_phantom(window, qtbot)
    s = window.session
    labels = np.zeros(s.volume.shape, np.uint8)
    labels[s.volume.voxels > 70] = 1
    labels[3:6, 5:15, 5:25] = 2
    table = LabelTable((Label(1, "Liver", (220, 60, 60)), Label(2, "Box", (60, 120, 230)),
                        Label(3, "Empty", (200, 200, 40))))
    s.open(s.volume, LabelMap(labels, s.volume.affine.copy(), table))
    qtbot.wait(50)


def _show_dock(window, qtbot):
    """The dock as a user opens it: the key M (the View menu's "Statistics panel" action)."""
    from PySide6.QtCore import Qt

    dock = window.docks["Statistics"]
    assert not dock.isVisible()  # hidden until asked for
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    qtbot.keyClick(window.view, Qt.Key.Key_M)
    qtbot.waitUntil(dock.isVisible, timeout=5_000)
    assert window.stats.isVisible()
    _settled(window, qtbot)
    return window.stats


def _settled(window, qtbot) -> None:
    qtbot.waitUntil(lambda: not window.stats.pending, timeout=WAIT_MS)


def _column(panel, title: str) -> int:
    titles = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    return next(c for c, t in enumerate(titles) if t.startswith(title))


def _row_texts(panel) -> dict[str, list[str]]:
    t = panel.table
    return {t.item(r, 0).text(): [t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())}


def test_the_dock_shows_each_label_as_document_statistics_measures_it(window, qtbot):
    from unetgui.formats.statistics import csv_text
    from unetgui.tasks.stats import document_statistics

    _labelled_phantom(window, qtbot)
    panel = _show_dock(window, qtbot)
    s = window.session
    image, labels = s.volume.voxels, s.labels.labels
    voxel = abs(np.linalg.det(s.volume.affine[:3, :3]))  # 0.8 x 0.8 x 2 mm
    by_value = {r.label: r for r in panel.results}
    assert sorted(by_value) == [1, 2, 3] and panel.table.rowCount() == 3
    for value in (1, 2):
        mask = labels == value
        r = by_value[value]
        assert r.voxels == np.count_nonzero(mask)
        assert r.volume_mm3 == pytest.approx(np.count_nonzero(mask) * voxel)
        assert r.volume_ml == pytest.approx(np.count_nonzero(mask) * voxel / 1000)
        assert r.mean == pytest.approx(image[mask].mean())
        assert r.unit == "HU"
    assert by_value[3].voxels == 0 and by_value[3].mean is None  # an empty label: a row of zeros, no crash
    # every other number (surface, percentiles, extent, pieces, areas per slice) as the task measures it
    assert csv_text(panel.results) == csv_text(document_statistics(s.volume, s.labels))
    # what a user reads: thousands separators, units in the headers, HU for CT
    rows = _row_texts(panel)
    assert rows["Liver"][_column(panel, "Voxels")] == f"{by_value[1].voxels:,}"
    assert rows["Box"][_column(panel, "Volume\n(mm³)")] == f"{by_value[2].volume_mm3:,.1f}"
    assert rows["Empty"][_column(panel, "Voxels")] == "0" and rows["Empty"][_column(panel, "Mean")] == "–"
    # the box, 10 rows x 20 columns of 0.8 mm pixels: its in-plane diagonal, and the width across it
    diameter = _column(panel, "Diameter")
    long_, short = np.hypot(8, 16), 8 * np.hypot(8, 16) / 16  # the chord across the diagonal, corner to side
    assert rows["Box"][diameter] == f"{long_:.1f} × {short:.2f}" and rows["Empty"][diameter] == "–"  # 8.94 mm
    tip = panel.table.item(1, diameter).toolTip()
    assert "on slice 4" in tip and f"Feret) {np.linalg.norm([8, 16, 6]):.1f} mm" in tip  # 3 slices of 2 mm
    assert panel.table.horizontalHeaderItem(_column(panel, "Mean")).text() == "Mean ± SD\n(HU)"
    assert "standard deviation" in panel.table.horizontalHeaderItem(_column(panel, "Mean")).toolTip()
    assert "3 labels, measured in" in panel.status.text()
    # one curve per label in its colour, the area per slice against slices counted from 1
    assert sorted(panel.curves) == [1, 2]  # none for the empty label
    x, y = panel.curves[2].getData()  # the box: slices 3..5 from 0, 4..6 as the slider counts
    assert np.array_equal(x, [3.5, 4.5, 5.5, 6.5]) and np.allclose(y, by_value[2].slice_area_mm2[3:6])
    assert np.allclose(y, 10 * 20 * 0.8 * 0.8)
    on = np.flatnonzero(by_value[1].slice_area_mm2)
    x, y = panel.curves[1].getData()
    assert x[0] == on[0] + 0.5 and np.allclose(y, by_value[1].slice_area_mm2[on[0]:on[-1] + 1])
    assert panel.curves[1].opts["pen"].color().getRgb()[:3] == (220, 60, 60)
    window.tools.set_overlay(hidden={1})  # a label hidden in the view (the Labels dock's tick) is greyed here
    assert panel.curves[1].opts["pen"].color().getRgb()[:3] == (150, 150, 150)
    assert panel.table.item(0, 0).foreground().color() != panel.table.item(1, 0).foreground().color()


def test_the_dock_follows_a_brush_stroke_without_blocking_the_window(window, qtbot, monkeypatch):
    from PySide6.QtCore import Qt

    from unetgui.ui import stats_panel

    _open_phantom(window, qtbot)  # no labels yet: the first stroke names "Liver" (conftest answers the question)
    panel = _show_dock(window, qtbot)
    s, view = window.session, window.view
    assert [r.voxels for r in panel.results] == [0]
    before = s.labels.labels.copy()
    seen, real, release = [], stats_panel.document_statistics, threading.Event()

    def slow(*args, **kwargs):  # a measurement that lasts until the test lets it end
        seen.append(threading.current_thread() is threading.main_thread())
        release.wait(WAIT_MS / 1000)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats_panel, "document_statistics", slow)
    qtbot.keyClick(view, Qt.Key.Key_B)
    window.tools.brush_size = 6
    _drag(qtbot, view, _line(view, 30, 20, 50), pace_ms=12)
    painted = int(np.count_nonzero((s.labels.labels == 1) & (before != 1)))
    assert painted > 50
    qtbot.waitUntil(lambda: panel.measuring, timeout=5_000)  # measuring on a worker thread...
    z = s.current_slice
    qtbot.keyClick(view, Qt.Key.Key_Up)  # ...while the window still answers
    assert s.current_slice == z + 1 and panel.measuring and panel.slice_line.value() == z + 2
    release.set()
    _settled(window, qtbot)
    assert seen and not any(seen)
    assert [r.voxels for r in panel.results] == [painted]  # rose by exactly what the stroke painted
    assert panel.results[0].slice_area_mm2[z] == pytest.approx(painted * 0.8 * 0.8)


def test_edits_during_a_measurement_are_measured_once_more_and_old_documents_dropped(window, qtbot, monkeypatch):
    from unetgui.ui import stats_panel

    _labelled_phantom(window, qtbot)
    panel = _show_dock(window, qtbot)
    s = window.session
    calls, real, release = [], stats_panel.document_statistics, threading.Event()

    def slow(*args, **kwargs):  # takes no ``cancel``: it runs to its end, as a slow measurement may
        calls.append(int(np.count_nonzero(args[1].labels == 2)))
        release.wait(WAIT_MS / 1000)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats_panel, "document_statistics", slow)
    s.set_active_label(2)
    _paint(window, 8, 10, 30)
    qtbot.waitUntil(lambda: panel.measuring, timeout=5_000)
    for k in (1, 2):  # two more strokes, each debounced while the first measurement runs
        _paint(window, 8, 10 + 10 * k, 30)
        qtbot.wait(stats_panel.DEBOUNCE_MS + 100)
    assert len(calls) == 1 and panel.pending
    release.set()
    _settled(window, qtbot)
    assert len(calls) == 2  # one run, then one more for everything that came meanwhile
    assert panel.results[1].voxels == np.count_nonzero(s.labels.labels == 2) == calls[-1]
    # a measurement of a document that was replaced meanwhile never shows
    release.clear()
    _paint(window, 2, 50, 50)
    qtbot.waitUntil(lambda: panel.measuring, timeout=5_000)
    s.open(Volume(s.volume.voxels.copy(), s.volume.affine, "CT"))
    qtbot.wait(stats_panel.DEBOUNCE_MS + 100)
    assert panel.results == [] and len(calls) == 3  # the new document waits for the old measurement to end
    shown = []
    panel.updated.connect(lambda: shown.append([r.voxels for r in panel.results]))
    release.set()
    _settled(window, qtbot)
    assert shown == [[0]] and len(calls) == 4  # the old document's numbers never showed


def test_the_plot_moves_the_app_to_the_slice_clicked_and_its_line_follows_the_slider(window, qtbot):
    from PySide6.QtCore import QPointF, Qt

    _labelled_phantom(window, qtbot)
    panel = _show_dock(window, qtbot)
    s = window.session
    slider = window.area.slider.slider
    slider.setValue(2)  # the slider as a user drags it
    assert s.current_slice == 2 and panel.slice_line.value() == 3  # slices counted from 1, as the slider shows
    box = panel.plot.getPlotItem().getViewBox()
    top = box.viewRange()[1][1]
    point = panel.plot.mapFromScene(box.mapViewToScene(QPointF(7.2, top / 2)))  # on slice 7 (1-based)
    qtbot.mouseClick(panel.plot.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(lambda: s.current_slice == 6, timeout=5_000)
    assert slider.value() == 6 and panel.slice_line.value() == 7
    assert window.area.slider.label.text().startswith("7 / 10")


def test_copy_and_save_csv_hold_the_rows_shown(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QFileDialog

    from unetgui.formats.statistics import csv_text

    _labelled_phantom(window, qtbot)
    panel = _show_dock(window, qtbot)
    path = tmp_path / "liver stats.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), "CSV (*.csv)"))
    panel.save_button.click()
    text = path.read_bytes().decode("utf-8")  # CRLF kept
    assert text == csv_text(panel.results) and str(path) in panel.status.text()
    rows = list(csv.DictReader(io.StringIO(text)))
    labels = [r for r in rows if r["section"] == "labels"]
    shown = _row_texts(panel)
    assert [r["name"] for r in labels] == ["Liver", "Box", "Empty"]
    for r, result in zip(labels, panel.results):
        assert int(r["voxels"]) == result.voxels and shown[r["name"]][1] == f"{int(r['voxels']):,}"
        assert float(r["volume_mm3"]) == pytest.approx(result.volume_mm3)
    areas = [r for r in rows if r["section"] == "slice_area" and r["label"] == "2"]
    assert [int(r["slice"]) for r in areas] == [4, 5, 6]  # slices 3..5 counted from 1
    panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]


def test_closing_the_document_clears_the_dock(window, qtbot):
    _labelled_phantom(window, qtbot)
    panel = _show_dock(window, qtbot)
    assert panel.table.rowCount() == 3
    window.session.close()
    assert panel.table.rowCount() == 0 and not panel.results and not panel.curves
    assert not panel.save_button.isEnabled()


def test_a_hidden_dock_measures_nothing_until_shown(window, qtbot, monkeypatch):
    from unetgui.ui import stats_panel

    calls, real = [], stats_panel.document_statistics
    monkeypatch.setattr(stats_panel, "document_statistics", lambda *a, **k: calls.append(1) or real(*a, **k))
    _labelled_phantom(window, qtbot)
    qtbot.wait(2 * stats_panel.DEBOUNCE_MS)
    assert not calls and window.stats.pending
    _show_dock(window, qtbot)
    assert len(calls) == 1 and len(window.stats.results) == 3


def test_the_sample_shows_hu_statistics_of_its_liver(window, qtbot):
    from unetgui.app import RESOURCES

    if not (RESOURCES / "sample" / "dicom").is_dir():
        pytest.skip("sample not built")
    window.resources = str(RESOURCES)  # as app.run builds the window
    window.open_sample()
    qtbot.waitUntil(lambda: window.session.volume is not None and not window.runner.busy, timeout=60_000)
    panel = _show_dock(window, qtbot)
    s = window.session
    (liver,) = panel.results
    mask = s.labels.labels == 1
    assert liver.unit == "HU" and liver.voxels == np.count_nonzero(mask)
    assert liver.mean == pytest.approx(s.volume.voxels[mask].mean())
    assert 30 < liver.mean < 90  # liver tissue, 60 HU with brighter vessels
    assert np.count_nonzero(liver.slice_area_mm2) == 4  # annotated on 4 slices
    assert panel.table.horizontalHeaderItem(_column(panel, "Median")).text() == "Median\n(HU)"
    assert "HU" in panel.table.horizontalHeaderItem(_column(panel, "P5 / P95")).text()


def test_a_stroke_shows_its_numbers_before_the_slow_surface_areas_and_meshes_only_its_label(window, qtbot,
                                                                                              monkeypatch):
    """Meshing a large organ takes seconds: the dock shows the new numbers first (the area "…"), meshes only the
    label the stroke changed, and a stroke during that step brings its numbers at once."""
    from unetgui.core.progress import check
    from unetgui.formats import mesh
    from unetgui.formats.statistics import csv_text
    from unetgui.tasks.stats import document_statistics

    _labelled_phantom(window, qtbot)
    panel = _show_dock(window, qtbot)  # every area measured once
    s = window.session
    meshed, real, release = [], mesh.surface, threading.Event()

    def slow(mask, *args, cancel=None, **kwargs):  # meshing that lasts until the test lets it end
        meshed.append(int(np.count_nonzero(mask)))
        while not release.wait(0.02):
            check(cancel)
        return real(mask, *args, cancel=cancel, **kwargs)

    monkeypatch.setattr(mesh, "surface", slow)
    area = _column(panel, "Surface")
    s.set_active_label(2)
    _paint(window, 8, 10, 30)
    qtbot.waitUntil(lambda: panel.measuring_areas, timeout=WAIT_MS)
    box = int(np.count_nonzero(s.labels.labels == 2))
    rows = _row_texts(panel)
    assert rows["Box"][1] == f"{box:,}" and rows["Box"][area] == "…"  # the numbers, the area coming
    assert rows["Liver"][area] not in ("…", "–")  # unchanged: remembered
    assert meshed == [box] and "measuring 1 surface" in panel.status.text()
    _paint(window, 8, 20, 30)  # a stroke while the box is meshed: its numbers without waiting for that mesh
    box = int(np.count_nonzero(s.labels.labels == 2))
    qtbot.waitUntil(lambda: panel.results[1].voxels == box and panel.measuring_areas, timeout=WAIT_MS)
    assert meshed[-1] == box and _row_texts(panel)["Box"][area] == "…"
    release.set()
    _settled(window, qtbot)
    assert csv_text(panel.results) == csv_text(document_statistics(s.volume, s.labels))
    assert _row_texts(panel)["Box"][area] not in ("…", "–") and "measured in" in panel.status.text()


def test_the_pieces_tab_lists_each_lesion_and_a_click_goes_to_it(window, qtbot):
    """A label of three lesions: the Pieces tab lists each, largest first, with its volume and diameters as the
    statistics measure them; a click on the smallest takes the view (slice and crosshair) to it."""
    from PySide6.QtCore import Qt

    _open_phantom(window, qtbot)
    s = window.session
    labels = np.zeros(s.volume.shape, np.uint8)
    labels[2:5, 10:20, 10:20] = 1  # 10 x 10 pixels on 3 slices
    labels[6, 40:44, 30:36] = 1  # 4 x 6 on one slice
    labels[8, 50:52, 50:52] = 1  # 2 x 2
    s.open(s.volume, LabelMap(labels, s.volume.affine.copy(), LabelTable((Label(1, "Lesion", (230, 160, 40)),))))
    panel = _show_dock(window, qtbot)
    (lesion,) = panel.results
    assert lesion.components == 3 and [p.voxels for p in lesion.pieces] == [300, 24, 4]
    # the label's row gives its largest lesion's diameters (across lesions they would mean nothing)
    cell = panel.table.item(0, _column(panel, "Diameter"))
    assert cell.text() == f"largest {np.hypot(8, 8):.1f} × {np.hypot(8, 8):.1f}" and "of 3 pieces" in cell.toolTip()
    panel.tabs.setCurrentIndex(1)
    assert panel.tabs.tabText(1) == "Pieces (3)"
    table = panel.pieces
    texts = [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]
    assert [t[:2] for t in texts] == [["Lesion", "1 of 3"], ["Lesion", "2 of 3"], ["Lesion", "3 of 3"]]
    pixel, thick = 0.8, 2.0  # the phantom's grid
    assert texts[1][3] == f"{np.hypot(4 * pixel, 6 * pixel):.2f} × {4 * pixel * np.hypot(4, 6) / 6:.2f}"
    assert texts[1][4] == "7"  # slice 6 from 0, counted from 1
    assert texts[0][5] == f"{np.linalg.norm([8, 8, 3 * thick]):.1f}"  # 10 x 10 x 3 slices: its space diagonal
    small = lesion.pieces[2]
    assert small.volume_mm3 == pytest.approx(4 * pixel * pixel * thick) and small.go_to[0] == 8
    view = window.view
    assert not view.calipers.shown
    rect = table.visualItemRect(table.item(1, 2))  # the 4 x 6 lesion on slice 7 (6 from 0)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: s.current_slice == 6, timeout=5_000)
    assert tuple(s.position) == (6, 42, 33) and window.area.slider.slider.value() == 6  # the long axis' middle
    # its RECIST calipers on the slice: the long axis corner to corner, both lengths written beside them
    assert view.calipers.shown
    xs, ys = view.calipers.lines[0].getData()
    ends = sorted(zip(xs, ys))
    a, b = (view.view_point(y, x) for x, y in ((29.5, 39.5), (35.5, 43.5)))  # the box's outer corners
    c, d = (view.view_point(y, x) for x, y in ((29.5, 43.5), (35.5, 39.5)))
    assert ends in (sorted([(a.x(), a.y()), (b.x(), b.y())]), sorted([(c.x(), c.y()), (d.x(), d.y())]))
    assert [t.toPlainText() for t in view.calipers.texts] == [f"{lesion.pieces[1].long_diameter_mm:.1f} mm",
                                                              f"{lesion.pieces[1].short_diameter_mm:.1f} mm"]
    qtbot.keyClick(view, Qt.Key.Key_Up)  # another slice: not there
    assert not view.calipers.shown
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.calipers.shown
    rect = table.visualItemRect(table.item(2, 2))  # the smallest lesion
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: s.current_slice == 8, timeout=5_000)
    assert small.axes.slice == 8 and view.calipers.shown
    _paint(window, 8, 20, 20)  # an edit: the measurement no longer matches the labels
    assert not view.calipers.shown and window.tools.calipers is None
    _settled(window, qtbot)
