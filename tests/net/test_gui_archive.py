"""The archive in the real window against the real Orthanc (tests/net/conftest.py): File > Archive nodes as a user
fills it in (Test connection), File > Open from archive (search, retrieve with progress, the series opens and joins
the project, a second open comes from the cache), the export dialog sends the DICOM-SEG back, and a node that does
not answer is one line in the dialog while the window stays usable."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from PySide6.QtCore import Qt

from unetgui.formats.inputs import open_image

pytestmark = pytest.mark.gui

CT_PATIENT = "99000"  # the shared 3-slice CT's PatientID (the archive holds it and two MR series of another patient)


@pytest.fixture
def ct(data_dir):
    return data_dir / "dcmqi-ct-3slice-liver-seg" / "ct"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _add_node(window, qtbot, orthanc, name="Orthanc", port=None):
    window.show_archive_nodes()
    dialog = window.nodes_dialog
    qtbot.mouseClick(next(b for b in dialog.findChildren(type(dialog.test_button)) if b.text() == "Add"),
                     Qt.MouseButton.LeftButton)
    dialog.name.setText(name)
    assert dialog.kind.currentIndex() == 0  # DICOM, as a new node starts
    dialog.host.setText("127.0.0.1")
    dialog.port.setValue(port or orthanc.dicom_port)
    dialog.called.setText("ORTHANC")
    dialog.move_port.setValue(orthanc.move_port)
    assert dialog.calling.text() == "UNETGUI"  # our AE title as the archive knows it
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.job is None and "Testing" not in dialog.status.text(), timeout=20_000)
    status = dialog.status.text()
    dialog.save()
    dialog.close()
    return status


def test_a_user_adds_the_archive_finds_the_ct_retrieves_it_and_it_opens(window, qtbot, orthanc, ct):
    assert "answers" in _add_node(window, qtbot, orthanc)
    window.show_archive()
    dialog = window.archive_dialog
    assert dialog.node_box.count() == 1 and "Orthanc" in dialog.node_box.currentText()
    dialog.patient_id.setText(CT_PATIENT)
    dialog.modality.setCurrentText("CT")  # other tests may have stored SEGs under this patient's study
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.job is None and dialog.table.rowCount() > 0, timeout=20_000)
    assert dialog.table.rowCount() == 1 and dialog.table.item(0, 4).text() == "CT"
    assert dialog.table.item(0, 2).text() == "2003-04-17" and dialog.table.item(0, 7).text() == "3"
    assert dialog.open_button.isEnabled(), (dialog.selected(), dialog.table.selectedItems())
    qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.job is None, timeout=30_000)
    assert "opening" in dialog.status.text(), dialog.status.text()
    qtbot.waitUntil(lambda: window.session.is_open, timeout=30_000)
    expected = open_image(str(ct)).volume
    assert np.array_equal(window.session.volume.voxels, expected.voxels)
    assert np.allclose(window.session.volume.affine, expected.affine)
    entry = window.projects.entry
    assert entry is not None and entry.series_uid == expected.info.series_uid
    assert entry.origin.startswith("Orthanc (ORTHANC@127.0.0.1") and "via get" in entry.origin  # where it came from
    from unetgui.ui.series_panel import SeriesPanel

    (panel,) = window.findChildren(SeriesPanel)
    assert "retrieved from Orthanc" in panel.list.item(0).toolTip()
    assert not dialog.isVisible()  # the image shows, not the dialog

    # the next time, the series shows as cached, and opens from the cache without a job that asks the archive
    window.show_archive()
    dialog = window.archive_dialog
    dialog.patient_id.setText(CT_PATIENT)
    dialog.modality.setCurrentText("CT")
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.job is None and dialog.table.rowCount() > 0, timeout=20_000)
    assert dialog.table.item(0, 8).text() == "cached"
    generation = window.session.generation
    qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    assert dialog.job is None and "cached" in dialog.status.text()  # nothing asked of the archive
    qtbot.waitUntil(lambda: window.session.generation > generation, timeout=20_000)


def test_the_export_dialog_sends_the_dicom_seg_to_the_archive(window, qtbot, orthanc, ct, tmp_path):
    from gui_helpers import _paint

    _add_node(window, qtbot, orthanc)
    window.io.open_dicom_folder(str(ct), single_opens=True)
    qtbot.waitUntil(lambda: window.session.is_open, timeout=20_000)
    _paint(window, 1, 200, 200)
    window.show_export()
    dialog = window.export_dialog
    dialog.folder.setText(str(tmp_path / "export"))  # not beside the shared CT
    assert dialog.send_row.isVisible() and dialog.send_to.currentIndex() == 0  # off until chosen
    for box in (dialog.label_png, dialog.nifti, dialog.metrics):
        box.setChecked(False)
    dialog.send_to.setCurrentIndex(1)
    dialog.start()
    qtbot.waitUntil(lambda: "Sent the DICOM-SEG" in dialog.status.text() or "not sent" in dialog.status.text(),
                    timeout=30_000)
    assert "Sent the DICOM-SEG" in dialog.status.text(), dialog.status.text()
    study = open_image(str(ct)).volume.info.study_uid
    found = requests.post(f"{orthanc.rest}/tools/find", json={"Level": "Series", "Query": {
        "StudyInstanceUID": study, "Modality": "SEG"}}, timeout=5).json()
    assert found, "the SEG is not under the CT's study"
    dialog.close()


def test_an_archive_that_does_not_answer_is_one_line_and_the_window_stays_usable(window, qtbot, orthanc):
    status = _add_node(window, qtbot, orthanc, name="Gone", port=_free_port())
    assert "Gone" in status and "\n" not in status and "Traceback" not in status
    window.show_archive()
    dialog = window.archive_dialog
    dialog.patient_id.setText(CT_PATIENT)
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.job is None, timeout=30_000)
    assert "Gone" in dialog.status.text() and dialog.table.rowCount() == 0
    assert dialog.search_button.isEnabled()
    dialog.close()
