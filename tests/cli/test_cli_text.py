"""Issue 24: text that came from a file reaches the terminal escaped (core.textsafe.printable), in errors and in
what a command prints."""

from __future__ import annotations

import numpy as np

from unetgui import cli
from unetgui.core.volume import Volume


def test_an_error_naming_a_hostile_file_name_is_escaped(tmp_path, capsys):
    code = cli.main(["info", str(tmp_path / "scan\x1b[2J\x1b]0;owned\x07.nii")])
    err = capsys.readouterr().err
    assert code == 1 and "\x1b" not in err and "\x07" not in err and "\\x1b[2J" in err


def test_info_escapes_a_series_description_from_the_file(tmp_path, capsys):
    from unetgui.formats.dicom.writer import SeriesSpec, write_series

    write_series(np.zeros((2, 8, 8), np.int16), str(tmp_path / "d"),
                 SeriesSpec(series_description="liver\x1b[31m red"))
    assert cli.main(["info", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "liver\\x1b[31m red" in out


def test_convert_warnings_are_escaped(tmp_path, capsys):
    from unetgui.formats import nifti

    path = tmp_path / "x\x1b[1m.nii.gz"
    nifti.write_image(Volume(np.zeros((2, 8, 8), np.int16), np.diag([1.0, 1.0, 2.0, 1.0]), "CT"), str(path))
    cli.main(["convert", "--input", str(path), "--output", str(tmp_path / "out.nii.gz")])
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err
