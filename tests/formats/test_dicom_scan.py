"""Scanning: DICOMDIR, progress and cancel, series summaries for the picker."""

from __future__ import annotations

import pytest

from conftest import DATA
from unetgui.core.errors import Cancelled, DicomError
from unetgui.core.progress import CancelToken
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series

DICOMDIR_SET = DATA / "pydicom-test-files" / "test_files" / "dicomdirtests"


def test_a_dicomdir_file_stands_for_its_folder():
    via_file = scan(str(DICOMDIR_SET / "DICOMDIR"))
    via_folder = scan(str(DICOMDIR_SET))
    assert [s.key for s in via_file.series] == [s.key for s in via_folder.series]
    assert len(via_file.series) >= 3
    assert any(reason.startswith("DICOMDIR") for _, reason in via_file.skipped)


def test_summary_row_for_the_series_picker(tmp_path, phantom):
    spec = SeriesSpec(pixel_spacing=(0.7, 0.8), slice_spacing=2.5, slice_thickness=5.0, series_description="abdomen")
    write_series(phantom, str(tmp_path), spec)
    (series,) = scan(str(tmp_path)).series
    row = series.summary()
    assert row["patient"] == "PHANTOM^UNETGUI" and row["modality"] == "CT" and row["description"] == "abdomen"
    assert row["slices"] == "12" and row["size"] == "64 x 80" and row["spacing_mm"] == "0.8 x 0.7 x 2.5"
    assert len(row["date"]) == 8


def test_progress_is_reported_and_cancel_stops_scan_and_load(tmp_path, phantom):
    write_series(phantom, str(tmp_path), SeriesSpec())
    calls = []
    result = scan(str(tmp_path), progress=lambda done, total, msg: calls.append((done, total)))
    assert calls[0] == (0, 12) and calls[-1] == (12, 12)
    loads = []
    load_series(result.series[0], progress=lambda done, total, msg: loads.append(done))
    assert loads[-1] == 12

    token = CancelToken()

    def cancel_after_first(done, total, msg):
        if done >= 1:
            token.set()

    with pytest.raises(Cancelled):
        load_series(result.series[0], progress=cancel_after_first, cancel=token)
    token2 = CancelToken()
    token2.set()
    with pytest.raises(Cancelled):
        scan(str(tmp_path), cancel=token2)


def test_find_by_key_uid_or_number(tmp_path, phantom):
    write_series(phantom, str(tmp_path / "a"), SeriesSpec(series_description="a"))
    write_series(phantom, str(tmp_path / "b"), SeriesSpec(series_description="b"))
    result = scan(str(tmp_path))
    first, second = result.series
    assert result.find(second.key) is second and result.find(second.uid) is second
    assert result.find("1") is first
    with pytest.raises(DicomError, match="no series matches"):
        result.find("3")


def test_deleted_file_between_scan_and_load_is_a_dicom_error(tmp_path, phantom):
    paths = write_series(phantom, str(tmp_path), SeriesSpec())
    (series,) = scan(str(tmp_path)).series
    (tmp_path / paths[4].rsplit("/", 1)[1]).unlink()
    with pytest.raises(DicomError, match="IM0005.dcm"):
        load_series(series)
