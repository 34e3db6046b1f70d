"""File > Open labels, through the dialog code path: NRRD label maps land on a DICOM like its DICOM-SEG, and
the reader's notes (a {0, 255} mask read as binary) reach the user as a non-modal warning."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from conftest import DATA
from unetgui.core.session import Session
from unetgui.formats.dicom import scan
from unetgui.formats.dicom_seg import read_dicom_seg

pytestmark = pytest.mark.gui

DCMQI = DATA / "dcmqi-ct-3slice-liver-seg"


@pytest.fixture
def io(qtbot):
    from PySide6.QtWidgets import QWidget

    from unetgui.ui.document_io import DocumentIO
    from unetgui.workers.jobs import JobRunner

    parent = QWidget()
    qtbot.addWidget(parent)
    runner = JobRunner(parent)
    io = DocumentIO(parent, Session(), runner)
    io.image_loaded.connect(lambda volume, source, kind: io.session.open(volume))  # what the window's project does
    io.labels_loaded.connect(lambda labels: _open_read(io.session, labels))  # as ProjectController.replace_labels
    yield io
    qtbot.waitUntil(lambda: not runner.busy, timeout=30_000)


def _open_read(session, labels) -> None:
    from unetgui.core.annotation import label_file_annotation
    from unetgui.core.volume import LabelMap

    values, reviewed, annotated = label_file_annotation(labels.labels)
    session.open(session.volume, LabelMap(values, labels.affine, labels.table), reviewed=reviewed, annotated=annotated)


def _open_ct(io, qtbot):
    (series,) = scan(str(DCMQI / "ct")).series
    io.load_series(series)
    qtbot.waitUntil(lambda: io.session.is_open, timeout=30_000)


def _choose(io, qtbot, monkeypatch, path) -> str:
    """Open labels the way the menu does, the file dialog answering ``path``; returns the dialog's filter."""
    from unetgui.ui import document_io

    asked = {}

    def answer(parent, title, folder, filters):
        asked["filters"] = filters
        return str(path), ""

    monkeypatch.setattr(document_io.QFileDialog, "getOpenFileName", answer)
    before = io.session.labels
    io.ask_labels()
    qtbot.waitUntil(lambda: io.session.labels is not before or bool(io.last_error), timeout=30_000)
    assert not io.last_error
    return asked["filters"]


def _notes(io) -> list[str]:
    return [box.informativeText() for box in io._notes]


def test_a_dcmqi_nrrd_label_map_opens_on_its_ct_like_the_dicom_seg(io, qtbot, monkeypatch):
    _open_ct(io, qtbot)
    filters = _choose(io, qtbot, monkeypatch, DCMQI / "labelmaps" / "liver_seg.nrrd")
    seg, _ = read_dicom_seg(str(DCMQI / "seg" / "liver_seg.dcm"), io.session.volume)
    assert np.array_equal(io.session.labels.labels, seg.labels) and _notes(io) == []
    assert io.session.reviewed.all()  # every slice has liver: the label file's slices count as annotated
    assert all(suffix in filters.split(";;")[0] for suffix in ("*.nii.gz", "*.nrrd", "*.nhdr", "*.seg.nrrd", "*.dcm"))


def test_a_0_255_nifti_opens_as_a_binary_mask_with_a_note(io, qtbot, monkeypatch, tmp_path):
    _open_ct(io, qtbot)
    volume = io.session.volume
    mask = np.zeros(volume.shape, np.uint8)
    mask[:, 100:200, 150:300] = 255
    path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0), volume.affine), str(path))  # (x, y, z) on the CT grid
    _choose(io, qtbot, monkeypatch, path)
    assert np.array_equal(io.session.labels.labels, (mask == 255).astype(np.uint8))
    qtbot.waitUntil(lambda: bool(io._notes), timeout=5_000)
    assert any("read as a binary mask" in text for text in _notes(io))
