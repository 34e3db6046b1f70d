"""The command line as a newcomer meets it: mistyped commands, --help, --series everywhere, progress in logs."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from unetgui.cli import COMMANDS, _parser
from unetgui.cli.progress import ProgressLine


def _subcommands():
    (sub,) = [a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sub.choices


@pytest.mark.parametrize("argv, hint", [(["tarin", "--images", "x"], "did you mean train?"),
                                        (["tables", "a.nii.gz"], "commands: info, convert")])
def test_a_mistyped_command_is_an_error_not_the_app(argv, hint):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    run = subprocess.run([sys.executable, "-m", "unetgui", *argv], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 2, run.stderr
    assert f"unknown command {argv[0]!r}" in run.stderr and hint in run.stderr
    assert "Traceback" not in run.stderr and "qt." not in run.stderr.lower()


def test_a_path_that_exists_still_opens_the_app(monkeypatch, tmp_path):
    from unetgui import __main__ as entry

    assert entry.unknown_word([str(tmp_path)], COMMANDS) is None
    assert entry.unknown_word(["--sample"], COMMANDS) is None
    assert entry.unknown_word([], COMMANDS) is None


def test_every_command_has_examples_and_every_option_a_help_text():
    commands = _subcommands()
    assert set(commands) == set(COMMANDS)
    for name, parser in commands.items():
        assert "examples:\n  unetgui" in (parser.epilog or ""), name
        assert [a.dest for a in parser._actions if not a.help] == [], name
        assert parser.format_help().rstrip().splitlines()[-1].strip().startswith("unetgui"), name


@pytest.mark.parametrize("command", ["predict", "train", "suggest", "tune", "evaluate", "convert", "export"])
def test_every_command_that_reads_a_series_takes_series(command):
    assert any("--series" in a.option_strings for a in _subcommands()[command]._actions)


def test_predict_picks_a_series_of_a_folder_that_holds_two(tmp_path, capsys):
    """--series reaches the reader: a folder with two series needs it, and says so."""
    import numpy as np

    from conftest import phantom_hu
    from engine_fixtures import tiny_checkpoint
    from unetgui import cli
    from unetgui.formats.dicom.writer import SeriesSpec, write_series
    from unetgui.tasks import models

    write_series(phantom_hu((4, 64, 64)), str(tmp_path / "study" / "a"), SeriesSpec(series_description="a"))
    write_series(phantom_hu((5, 64, 64), seed=1), str(tmp_path / "study" / "b"), SeriesSpec(series_description="b"))
    models.save(tiny_checkpoint(), str(tmp_path / "m.unetgui"))
    base = ["predict", "--model", str(tmp_path / "m.unetgui"), "--input", str(tmp_path / "study"), "--device", "cpu"]
    assert cli.main([*base, "--output", str(tmp_path / "x.nii.gz")]) == 1
    assert "series" in capsys.readouterr().err
    import nibabel as nib

    depths = set()
    for number in ("1", "2"):
        assert cli.main([*base, "--series", number, "--output", str(tmp_path / f"{number}.nii.gz")]) == 0
        depths.add(np.asarray(nib.load(str(tmp_path / f"{number}.nii.gz")).dataobj).shape[2])
    assert depths == {4, 5}


def test_progress_goes_to_a_log_as_plain_lines():
    out = io.StringIO()  # not a terminal: a log file, a cluster job's output
    bar = ProgressLine("training", stream=out)
    for done in range(0, 101):
        bar(done, 100, f"step {done}")
    lines = out.getvalue().splitlines()
    assert 15 <= len(lines) <= 25 and all(line.startswith("training: ") for line in lines)
    assert "\r" not in out.getvalue() and lines[-1].startswith("training: 100/100 (100 %)")
