"""The headless commands, called as a user calls them (`python -m unetgui ...`) and in-process."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from conftest import DATA
from unetgui import cli
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series

TOTALSEG = DATA / "totalsegmentator-example-ct-dicom"


def test_info_lists_series_and_skipped_files(capsys):
    assert cli.main(["info", str(TOTALSEG)]) == 0
    out = capsys.readouterr().out
    assert "1 series in 22 file(s)" in out
    assert "CT" in out and "20 slices" in out and "512 x 512" in out and "0.977 x 0.977 x 2" in out
    assert "2 file(s) skipped: 2 not DICOM" in out


def test_convert_writes_nifti_with_the_dicom_geometry(tmp_path):
    out = tmp_path / "ct.nii.gz"
    run = subprocess.run([sys.executable, "-m", "unetgui", "convert", "--input", str(TOTALSEG), "--output", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout
    img = nib.load(out)
    (series,) = scan(str(TOTALSEG)).series
    volume = load_series(series)
    assert img.shape == (512, 512, 20)
    assert np.allclose(img.affine, volume.affine, atol=1e-4)
    assert np.array_equal(np.asanyarray(img.dataobj), volume.voxels.transpose(2, 1, 0))


def test_convert_needs_a_series_choice_when_there_are_several(tmp_path, phantom, capsys):
    write_series(phantom, str(tmp_path / "a"), SeriesSpec(series_description="first"))
    write_series(phantom[:5], str(tmp_path / "b"), SeriesSpec(series_description="second"))
    out = tmp_path / "x.nii.gz"
    assert cli.main(["convert", "--input", str(tmp_path), "--output", str(out)]) == 1
    assert "choose one with --series" in capsys.readouterr().err
    assert not out.exists()
    result = scan(str(tmp_path))
    second = next(s for s in result.series if s.first.series_description == "second")
    assert cli.main(["convert", "--input", str(tmp_path), "--output", str(out), "--series", second.uid]) == 0
    assert nib.load(out).shape == (80, 64, 5)
    assert cli.main(["convert", "--input", str(tmp_path), "--output", str(out), "--series", "nope"]) == 1
    assert "no series matches 'nope'" in capsys.readouterr().err


def test_bad_input_gives_a_message_and_exit_code_1(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert cli.main(["convert", "--input", str(tmp_path), "--output", str(tmp_path / "x.nii.gz")]) == 1
    assert "no DICOM image series found" in capsys.readouterr().err
    assert cli.main(["info", str(tmp_path / "missing")]) == 1
    assert cli.main(["convert", "--input", str(TOTALSEG), "--output", str(tmp_path / "x.png")]) == 1


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        cli.main(["convert", "--input", "x"])
    assert exc.value.code == 2


def test_info_on_a_nifti_file(tmp_path, capsys):
    out = tmp_path / "ct.nii.gz"
    assert cli.main(["convert", "--input", str(TOTALSEG), "--output", str(out)]) == 0
    assert cli.main(["info", str(out)]) == 0
    assert "512 x 512 x 20 voxels of 0.9766 x 0.9766 x 2 mm" in capsys.readouterr().out
