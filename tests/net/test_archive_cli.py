"""``unetgui archive echo|find|get|send`` against the real Orthanc, with a saved node and with the address given."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from net.conftest import CT, MR_HITACHI, SEG
from unetgui import cli
from unetgui.formats.inputs import open_image
from unetgui.net.nodes import save_nodes
from unetgui.tasks import archive_cache


def _uids(folder) -> tuple[str, str]:
    ds = pydicom.dcmread(next(p for p in sorted(folder.iterdir()) if p.suffix == ".dcm"), stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID


@pytest.fixture
def saved(orthanc, data_root):
    """The Orthanc saved as node "pacs" (DIMSE) and "web" (DICOMweb) in the test's data root."""
    nodes = [orthanc.dimse("pacs")] + ([orthanc.web("web")] if orthanc.dicomweb else [])
    save_nodes(nodes)
    return nodes


def _address(orthanc) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(orthanc.dicom_port), "--called-aet", "ORTHANC"]


def test_echo_with_a_saved_node_and_with_the_address(orthanc, saved, capsys):
    assert cli.main(["archive", "echo", "--node", "pacs"]) == 0
    assert capsys.readouterr().out.startswith("pacs (ORTHANC@127.0.0.1:")
    assert cli.main(["archive", "echo", *_address(orthanc)]) == 0
    assert "answered in" in capsys.readouterr().out
    assert cli.main(["archive", "echo", "--url", f"{orthanc.rest}/dicom-web"]) == 0


def test_find_prints_one_line_per_series_and_writes_json(orthanc, tmp_path, capsys):
    out = tmp_path / "series.json"
    assert cli.main(["archive", "find", *_address(orthanc), "--patient-id", "99000", "--modality", "CT",
                     "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    study, series = _uids(CT)
    assert lines[0].startswith("date") and "series UID" in lines[0]
    assert lines[1].split()[:5] == ["20030417", "99000", "JANCT000", "CT", "2"] and lines[1].endswith(series)
    assert lines[-1].startswith("1 series in 1 study on archive (ORTHANC@")
    written = json.loads(out.read_text())
    assert [s["SeriesInstanceUID"] for s in written["series"]] == [series]
    assert written["series"][0]["StudyInstanceUID"] == study and written["series"][0]["Modality"] == "CT"
    assert written["query"]["patient_id"] == "99000"


def test_find_by_date_over_dicomweb_and_nothing_found(orthanc, saved, capsys):
    assert cli.main(["archive", "find", "--node", "web", "--study-date", "20171205"]) == 0
    assert capsys.readouterr().out.splitlines()[-2].endswith(_uids(MR_HITACHI)[1])
    assert cli.main(["archive", "find", "--node", "pacs", "--patient-id", "nobody"]) == 0
    assert capsys.readouterr().out.strip() == "0 series in 0 studies on pacs (ORTHANC@127.0.0.1:%d)" % orthanc.dicom_port


def test_get_writes_the_series_whole_and_refuses_to_overwrite(orthanc, saved, tmp_path, capsys):
    study, series = _uids(CT)
    out = tmp_path / "ct"
    assert cli.main(["archive", "get", "--node", "pacs", "--series", series, "--output", str(out), "--via", "move"]) == 0
    assert "wrote 3 file(s)" in capsys.readouterr().out
    got, expected = open_image(str(out)).volume, open_image(str(CT)).volume
    assert np.array_equal(got.voxels, expected.voxels) and np.allclose(got.affine, expected.affine)
    assert cli.main(["archive", "get", "--node", "pacs", "--series", series, "--output", str(out)]) == 1
    assert "not empty; give --overwrite" in capsys.readouterr().err
    assert cli.main(["archive", "get", "--url", f"{orthanc.rest}/dicom-web", "--series", series, "--study", study,
                     "--output", str(out), "--overwrite"]) == 0
    out_text = capsys.readouterr().out
    assert "wrote 3 file(s)" in out_text and "(from the cache)" in out_text  # the archive was not asked again
    assert sorted(os.listdir(out)) == sorted(n for n in os.listdir(archive_cache.cached_series(series)) if n.endswith(".dcm"))
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_send_over_both_and_the_errors(orthanc, saved, capsys):
    assert cli.main(["archive", "send", *_address(orthanc), str(SEG)]) == 0
    assert capsys.readouterr().out.startswith("stored 1 file(s) on archive (ORTHANC@")
    assert cli.main(["archive", "send", "--node", "web", str(SEG)]) == 0
    assert cli.main(["archive", "get", "--node", "web", "--series", _uids(CT)[1], "--output", "x", "--via", "get"]) == 1
    assert "WADO-RS only" in capsys.readouterr().err


def test_errors_are_one_line_and_usage_is_exit_2(orthanc, saved, capsys):
    from net.conftest import free_port

    port = free_port()
    assert cli.main(["archive", "echo", "--host", "127.0.0.1", "--port", str(port), "--called-aet", "PACS"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"unetgui: error: archive (PACS@127.0.0.1:{port}): cannot connect") and err.count("\n") == 1
    assert cli.main(["archive", "echo", "--node", "nope"]) == 1
    assert "no archive node named 'nope' (known: pacs" in capsys.readouterr().err
    assert cli.main(["archive", "echo", "--url", f"{orthanc.rest}/dicom-web", "--username", "me"]) == 1
    assert "set the environment variable UNETGUI_ARCHIVE_PASSWORD" in capsys.readouterr().err
    assert cli.main(["archive", "find", "--node", "pacs", "--study-date", "2024"]) == 1
    assert "the study date must be YYYYMMDD" in capsys.readouterr().err
    for argv in (["archive", "echo"], ["archive", "echo", "--host", "h"], ["archive", "echo", "--node", "pacs",
                                                                          "--url", "http://x"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2


def test_the_command_as_a_user_runs_it(orthanc):
    """A separate process: the exit code, and nothing on stderr but the one line (no pynetdicom logging)."""
    run = subprocess.run([sys.executable, "-m", "unetgui", "archive", "echo", "--host", "127.0.0.1", "--port",
                          str(orthanc.dicom_port), "--called-aet", "WRONG"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "Called AE title not recognised" in run.stderr, run.stderr
