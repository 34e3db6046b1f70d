"""Every shared DICOM edge-case file either loads or raises the one documented error (DicomError)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import DATA
from unetgui.core.errors import DicomError
from unetgui.formats.dicom import load_series, scan_files

_FOLDERS = ("pydicom-test-files", "pydicom-data", "dicom2nifti-test-series")
FILES = sorted(p for d in _FOLDERS for p in (DATA / d).rglob("*") if p.is_file())


def test_the_shared_data_is_there():
    assert len(FILES) > 350, f"expected the shared edge-case files under {DATA}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(DATA)))
def test_file_loads_or_raises_the_documented_error(path: Path):
    result = scan_files([str(path)])
    assert len(result.series) + len(result.skipped) + len(result.segmentations) >= 1
    for series in result.series:
        try:
            volume = load_series(series)
        except DicomError as exc:
            assert path.name in str(exc)  # the message names the file
            continue
        assert volume.voxels.ndim == 3 and volume.voxels.shape[0] >= 1
        assert volume.voxels.dtype != np.float64
        assert np.isfinite(volume.affine).all() and abs(np.linalg.det(volume.affine[:3, :3])) > 0


@pytest.mark.parametrize("name, reason", [
    ("README.txt", "not DICOM"),
    ("rtstruct.dcm", "no image data"),
    ("DICOMDIR", "DICOMDIR"),
    ("liver_1frame.dcm", "segmentation"),
])
def test_non_images_are_reported_as_skipped(name, reason):
    path = next(p for p in FILES if p.name == name)
    result = scan_files([str(path)])
    assert result.series == []
    assert result.skipped[0][1].startswith(reason)


@pytest.mark.parametrize("name", ["MR_truncated.dcm", "JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"])
def test_corrupt_pixel_data_raises_dicom_error_with_a_readable_message(name):
    path = next(p for p in FILES if p.name == name)
    (series,) = scan_files([str(path)]).series
    with pytest.raises(DicomError, match=name):
        load_series(series)


def test_monochrome1_is_inverted_with_a_warning():
    import pydicom

    mono1 = [p for p in FILES if p.suffix == ".dcm" and _photometric(pydicom, p) == "MONOCHROME1"]
    assert mono1, "the shared data has MONOCHROME1 files"
    for p in mono1:
        for series in scan_files([str(p)]).series:
            try:
                volume = load_series(series)
            except DicomError:
                continue
            assert any("MONOCHROME1" in w for w in volume.warnings)
            ds = pydicom.dcmread(p)
            stored = ds.pixel_array.astype(np.int64)
            bits = ds.BitsStored
            expected = (2**bits - 1) - stored if not ds.PixelRepresentation else -1 - stored
            slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
            got = volume.voxels[0] if stored.ndim == 2 else volume.voxels
            assert np.allclose(got, expected.reshape(got.shape) * slope + intercept)
            return
    pytest.fail("no MONOCHROME1 file loaded")


def _photometric(pydicom, path):
    try:
        return str(pydicom.dcmread(path, stop_before_pixels=True).get("PhotometricInterpretation", ""))
    except Exception:
        return ""
