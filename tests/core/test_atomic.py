"""One atomic writer (core/atomic.py) for every file the app writes: on failure the old file stays whole and
no temporary file is left behind, whichever writer failed."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from unetgui.core import atomic
from unetgui.core.errors import FormatError


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "project.json"
    atomic.write_bytes(str(path), b"old")

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_with(str(path), half_then_fail)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["project.json"]
    atomic.write_bytes(str(path), b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["project.json"]


def test_the_temporary_name_is_hidden_unique_and_keeps_the_suffix(tmp_path):
    a, b = (atomic.temp_path(str(tmp_path / "ct_labels.nii.gz")) for _ in range(2))
    assert a != b and os.path.dirname(a) == str(tmp_path)
    assert os.path.basename(a).startswith(atomic.TEMP_PREFIX) and a.endswith("-ct_labels.nii.gz")


def test_the_nifti_writer_uses_it(tmp_path, monkeypatch):
    """A writer that fails after writing part of its file (the disk fills) leaves the previous export whole."""
    from unetgui.core.volume import LabelMap, LabelTable
    from unetgui.formats import nifti

    labels = LabelMap(np.zeros((3, 4, 5), np.uint8), np.eye(4), LabelTable())
    path = str(tmp_path / "x_labels.nii.gz")
    nifti.write_labels(labels, path)
    assert nib.load(path).shape == (5, 4, 3)  # gzip chosen by the suffix, though written under a temporary name
    before = open(path, "rb").read()

    def failing_save(img, tmp):
        with open(tmp, "wb") as f:
            f.write(b"\x1f\x8b partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(nifti.nib, "save", failing_save)
    with pytest.raises(FormatError, match="No space left"):
        nifti.write_labels(LabelMap(np.ones((3, 4, 5), np.uint8), np.eye(4), LabelTable()), path)
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["x_labels.nii.gz"]
