"""The dialogs a new user meets (issue 31): the DICOM series list (readable dates, whole columns, a folder
without DICOM pointing to Open NIfTI), the export dialog (a folder a user finds, readable file names, Open
folder) and the keyboard shortcuts (whole text). Text is measured with the widgets' font metrics."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from conftest import phantom_hu
from gui_helpers import _nifti, _open, _paint

pytestmark = pytest.mark.gui


def _text_margin(table) -> int:
    """What an item view adds around a cell's text (both sides), as QCommonStyle lays it out."""
    from PySide6.QtWidgets import QStyle

    return 2 * (table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1)


def _cut_cells(table) -> list[str]:
    """The header labels and cells of ``table`` whose text is wider than their column."""
    from PySide6.QtWidgets import QStyle

    fm, header = table.fontMetrics(), table.horizontalHeader()
    header_margin = 2 * table.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMargin, None, header)
    cut = []
    for col in range(table.columnCount()):
        title = table.horizontalHeaderItem(col).text()
        if header.fontMetrics().horizontalAdvance(title) + header_margin > table.columnWidth(col):
            cut.append(f"header {title!r}")
        for row in range(table.rowCount()):
            text = table.item(row, col).text()
            if fm.horizontalAdvance(text) + _text_margin(table) > table.columnWidth(col):
                cut.append(f"{text!r} ({fm.horizontalAdvance(text)} px in a {table.columnWidth(col)} px column)")
    return cut


def _all_columns_in_view(table) -> bool:
    """Every column lies inside the table's viewport: nothing to scroll sideways to."""
    return sum(table.columnWidth(c) for c in range(table.columnCount())) <= table.viewport().width()


def _scanned(window, qtbot, folder):
    dialog = window.io.open_dicom_folder(str(folder))
    qtbot.waitUntil(lambda: dialog.result_ is not None, timeout=10_000)
    qtbot.waitExposed(dialog)
    return dialog


# -- the DICOM series list ---------------------------------------------------------------------------

def test_dicom_dates_read_as_iso_dates():
    from unetgui.ui.open_dialog import readable_date

    assert readable_date("20221208") == "2022-12-08"
    assert readable_date("2022.12.08") == "2022-12-08"  # the pre-1993 DICOM form
    assert readable_date("20221208081134.28") == "2022-12-08 08:11"  # a date-time (DT)
    assert readable_date("202212080811+0100") == "2022-12-08 08:11"
    assert readable_date("") == "" and readable_date("unknown") == "unknown"
    assert readable_date("20221399") == "20221399"  # not a date: shown as found


def test_series_list_shows_a_readable_date(window, qtbot, data_dir):
    dialog = _scanned(window, qtbot, data_dir / "totalsegmentator-example-ct-dicom" / "dicom")
    assert dialog.table.rowCount() == 1
    assert dialog.table.item(0, 1).text() == "2022-12-08"  # StudyDate 20221208
    assert dialog.table.item(0, 3).text() == "CT Body 3.0"
    assert not _cut_cells(dialog.table)
    assert not dialog.open_image.isVisible()  # Open NIfTI is offered only where no series was found
    dialog.reject()


def test_series_list_columns_show_their_whole_text(window, qtbot, data_dir):
    dialog = _scanned(window, qtbot, data_dir / "dicom2nifti-test-series")  # 27 series from five vendors
    table = dialog.table
    assert table.rowCount() == 27
    assert not _cut_cells(table)
    assert _all_columns_in_view(table), "the dialog is too narrow for its columns"
    spacing = [table.item(r, 6).text() for r in range(table.rowCount())]
    assert "0.512 x 0.512 x 0.778" in spacing
    # the user cannot shrink the dialog until a column is cut
    dialog.resize(300, dialog.height())
    qtbot.wait(10)
    assert not _cut_cells(table) and _all_columns_in_view(table)
    dialog.reject()


def test_a_long_description_is_shown_whole(window, qtbot, tmp_path):
    from unetgui.formats.dicom.writer import SeriesSpec, write_series

    description = "Thorax-Abdomen 1.5 B31f venous phase contrast enhanced"
    write_series(phantom_hu((3, 32, 32)), str(tmp_path / "ct"), SeriesSpec(series_description=description))
    dialog = _scanned(window, qtbot, tmp_path / "ct")
    assert dialog.table.item(0, 3).text() == description
    assert not _cut_cells(dialog.table)
    screen = dialog.screen().availableGeometry().width()
    # wide enough for every column; on a screen too narrow for that, as wide as the screen (the table scrolls)
    assert _all_columns_in_view(dialog.table) or dialog.width() == screen
    assert dialog.width() <= screen
    dialog.reject()


def test_a_folder_without_dicom_says_so_and_opens_nifti_instead(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    folder = tmp_path / "nifti only"
    folder.mkdir()
    image = _nifti(folder, "ct.nii.gz")
    (folder / "notes.txt").write_text("not an image")
    dialog = _scanned(window, qtbot, folder)
    text = dialog.status.text()
    assert "No DICOM image series found in this folder" in text and "2 file(s) looked at" in text
    assert "2 not DICOM" in text and "Open NIfTI" in text
    assert not dialog.table.isVisible()  # no empty table
    assert dialog.open_image.isVisible() and dialog.open_image.isEnabled()
    assert dialog.open_image.isDefault() and not dialog.buttons.button(dialog.buttons.StandardButton.Open).isVisible()

    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args: asked.append(args) or (image, ""))
    before = window.session.generation
    qtbot.mouseClick(dialog.open_image, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible() and asked and asked[0][2] == str(folder)  # the file dialog starts there
    qtbot.waitUntil(lambda: window.session.generation > before and not window.runner.busy, timeout=10_000)
    assert window.session.volume.shape == (10, 64, 80)


def test_an_empty_folder_says_it_holds_no_files(window, qtbot, tmp_path):
    dialog = _scanned(window, qtbot, tmp_path)
    assert "holds no files" in dialog.status.text() and dialog.open_image.isVisible()
    dialog.reject()


# -- export ------------------------------------------------------------------------------------------

def _open_dicom(window, qtbot, folder) -> None:
    dialog = _scanned(window, qtbot, folder)
    before = window.session.generation
    dialog.accept()
    qtbot.waitUntil(lambda: window.session.generation > before and not window.runner.busy, timeout=10_000)


def _export(qtbot, dialog) -> None:
    for box in (dialog.label_png, dialog.overlay_png, dialog.dicom_seg, dialog.metrics):
        box.setChecked(False)  # the NIfTI labels are enough here
    dialog.start()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10_000)


def test_export_goes_beside_the_dicom_folder_and_offers_to_open_it(window, qtbot, tmp_path, monkeypatch, data_dir):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QDesktopServices

    from unetgui.ui import export_dialog

    study = tmp_path / "study"
    shutil.copytree(data_dir / "dcmqi-ct-3slice-liver-seg" / "ct", study / "ct")
    _open_dicom(window, qtbot, study / "ct")
    assert window.projects.untitled
    _paint(window, 1, 200, 200)

    with monkeypatch.context() as m:  # a source folder the user cannot write into: the home folder
        m.setattr(export_dialog, "_writable", lambda folder: False)
        window.show_export()
        assert window.export_dialog.folder.text() == os.path.expanduser("~")
        window.export_dialog.close()

    window.show_export()
    dialog = window.export_dialog
    assert dialog.folder.text() == str(study)  # the DICOM folder's parent, not the home folder
    assert not dialog.open_folder.isVisible()  # nothing exported yet
    _export(qtbot, dialog)
    assert dialog.written and all(p.startswith(str(study) + os.sep) for p in dialog.written), dialog.status.text()
    assert dialog.open_folder.isVisible() and dialog.open_folder.isEnabled()
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    qtbot.mouseClick(dialog.open_folder, Qt.MouseButton.LeftButton)
    assert opened == [str(study)]
    dialog.close()

    window.show_export()  # the folder chosen for this image is remembered
    assert window.export_dialog.folder.text() == str(study)
    window.export_dialog.close()


def test_export_dialog_writes_a_surface_mesh_in_the_chosen_space(window, qtbot, tmp_path, data_dir):
    """The mesh options as a user finds them (off; STL in LPS, 30 smoothing iterations), then OBJ in RAS."""
    _open_dicom(window, qtbot, data_dir / "dcmqi-ct-3slice-liver-seg" / "ct")
    _paint(window, 1, 200, 200)
    window.show_export()
    dialog = window.export_dialog
    assert not dialog.mesh.isChecked() and not dialog.mesh_row.isEnabled()
    assert (dialog.mesh_format.currentText(), dialog.mesh_space.currentText()) == ("STL (binary)", "LPS (3D Slicer, DICOM)")
    assert (dialog.mesh_smoothing.value(), dialog.mesh_decimate.value()) == (30, 0)
    dialog.folder.setText(str(tmp_path / "out"))
    for box in (dialog.label_png, dialog.nifti, dialog.dicom_seg, dialog.metrics):
        box.setChecked(False)
    dialog.mesh.setChecked(True)
    assert dialog.mesh_row.isEnabled()
    dialog.mesh_format.setCurrentIndex(1)
    dialog.mesh_space.setCurrentIndex(1)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=20_000)
    (obj,) = (tmp_path / "out").glob("*_mesh/*_1_*.obj")
    manifest = json.loads(next((tmp_path / "out").glob("*_mesh/*_meshes.json")).read_text())
    assert manifest["coordinate_system"] == "RAS" and manifest["meshes"][0]["closed"]
    assert "# SPACE=RAS" in obj.read_text().splitlines()[0]
    dialog.close()


def test_export_of_a_nifti_in_a_saved_project_goes_to_its_exports_folder(window, qtbot, tmp_path):
    image = _nifti(tmp_path, "liver ct.nii.gz")
    _open(window, qtbot, image)
    window.show_export()
    assert window.export_dialog.folder.text() == str(tmp_path)  # untitled project: the NIfTI's folder
    window.export_dialog.close()
    root = tmp_path / "liver study"
    window.projects.save_as(str(root))
    window.show_export()
    assert window.export_dialog.folder.text() == str(root / "exports")
    window.export_dialog.close()


def test_export_file_names_are_readable(window, qtbot, tmp_path):
    from unetgui.formats.dicom.writer import SeriesSpec, write_series

    folder = tmp_path / "dicom"
    write_series(phantom_hu((4, 32, 32)), str(folder), SeriesSpec(patient_name="DOE^JANE", patient_id="PID12345",
                                                                 series_description="Abdomen liver"))
    _open_dicom(window, qtbot, folder)
    window.show_export()
    stem = window.export_dialog.name.text().removesuffix("_...")
    window.export_dialog.close()
    assert "Abdomen_liver" in stem and re.fullmatch(r"[A-Za-z0-9_-]+", stem)
    # the stem ends in 6 hex digits of the series UID (formats.export.export_basename): a re-scan with the same
    # number and description exported into the same folder must not take the first one's names
    assert len([p for p in stem.split("_") if re.fullmatch(r"[0-9a-f]{5,}", p) and re.search(r"\d", p)]) <= 1, stem
    assert not re.search(r"\d+\.\d+\.\d+", stem) and "DOE" not in stem.upper() and "12345" not in stem


# -- keyboard shortcuts ------------------------------------------------------------------------------

def test_shortcuts_dialog_shows_every_shortcut_whole(window, qtbot):
    from unetgui.ui.shortcuts_dialog import ShortcutsDialog

    rows = window.actions.listing()
    dialog = ShortcutsDialog(window, rows)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.table.rowCount() == len(rows) > 20
    assert not _cut_cells(dialog.table)
    assert _all_columns_in_view(dialog.table)
    assert dialog.height() <= dialog.screen().availableGeometry().height()


def test_a_long_shortcuts_list_stays_within_the_screen(window, qtbot):
    from unetgui.ui.shortcuts_dialog import ShortcutsDialog

    rows = [(f"Action number {i} with a rather long name to read", f"Ctrl+Shift+Alt+F{i}") for i in range(200)]
    dialog = ShortcutsDialog(window, rows)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.frameGeometry().height() <= dialog.screen().availableGeometry().height()
    assert not _cut_cells(dialog.table) and _all_columns_in_view(dialog.table)


def test_help_keyboard_shortcuts_opens_the_dialog(window, qtbot):
    from unetgui.ui.shortcuts_dialog import ShortcutsDialog

    window.actions.shortcuts.trigger()
    assert isinstance(window.shortcuts_dialog, ShortcutsDialog) and window.shortcuts_dialog.isVisible()
    assert not _cut_cells(window.shortcuts_dialog.table)
    window.shortcuts_dialog.close()
