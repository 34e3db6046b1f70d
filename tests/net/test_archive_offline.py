"""What needs no archive: the query's checks, untrusted attributes made safe, the cache's names, files to send."""

from __future__ import annotations

import json

import pytest
from pydicom.dataset import Dataset

from net.conftest import CT, SEG
from unetgui.core.errors import UnetguiError
from unetgui.tasks import archive
from unetgui.tasks import archive_cache
from unetgui.tasks.archive import Query


@pytest.mark.parametrize("date", ["", "20240131", "20240101-20241231", "-20240101", "20240101-", "20240101-20240101"])
def test_study_dates_that_are_dicom_ranges(date):
    assert Query(study_date=date).study_keys()["StudyDate"] == date


@pytest.mark.parametrize("date, reason", [("2024", "must be YYYYMMDD"), ("20240101--", "must be"), ("-", "must be"),
                                          ("2024013120240201", "must be"), ("20240230", "is not a date"),
                                          ("20241231-20240101", "ends before it starts")])
def test_study_dates_that_are_not(date, reason):
    with pytest.raises(UnetguiError, match=reason):
        Query(study_date=date)


def test_query_text_is_checked_and_keys_built():
    with pytest.raises(UnetguiError, match="backslash"):
        Query(patient_id="a\\b")
    with pytest.raises(UnetguiError, match="backslash or control"):
        Query(patient_name="DOE\nJOHN")
    with pytest.raises(UnetguiError, match="modality"):
        Query(modality="C T")
    q = Query(patient_id=" 123* ", modality="ct")
    assert q.patient_id == "123*"
    assert q.study_keys()["PatientID"] == "123*" and q.study_keys()["ModalitiesInStudy"] == "CT"
    assert q.study_keys()["PatientName"] == "" and "StudyInstanceUID" in q.study_keys()
    assert q.series_keys()["Modality"] == "CT" and q.series_keys()["SeriesInstanceUID"] == ""


def test_untrusted_attributes_become_one_line_json_safe_and_bounded():
    ds = Dataset()
    ds.PatientName = "EVIL\x1b[31m^NAME\u202e"
    ds.StudyDescription = "line one\r\nline two" + "x" * 5000
    ds.ModalitiesInStudy = ["CT", "SEG\x07"]
    ds.Rows = 512
    ds.add_new(0x00091010, "LO", "private")  # no keyword: left out
    ds.ReferencedSeriesSequence = [Dataset()]  # sequences: left out
    ds.PixelData = b"\x00\x01"  # binary: left out
    attrs = archive.attributes(ds)
    assert json.loads(json.dumps(attrs)) == attrs
    assert attrs["PatientName"] == "EVIL [31m^NAME"
    assert attrs["StudyDescription"].startswith("line one  line two") and len(attrs["StudyDescription"]) == 1024
    assert attrs["ModalitiesInStudy"] == ["CT", "SEG"] and attrs["Rows"] == 512
    assert set(attrs) == {"PatientName", "StudyDescription", "ModalitiesInStudy", "Rows"}


def test_cache_names_and_uids(data_root):
    assert archive_cache.cache_folder() == str(data_root / "archive_cache")
    assert archive_cache.cached_series("1.2.3") is None and archive_cache.cached_series("../../etc") is None
    with pytest.raises(UnetguiError, match="DICOM UID"):
        archive.check_uid("1.2.3/../x")
    with pytest.raises(UnetguiError, match="retrieve via one of"):
        archive.retrieve(_node(), "1.2", "1.2.3", via="ftp")


def _node():
    from unetgui.net.nodes import Node

    return Node("n", host="127.0.0.1", port=1, called_aet="X")


def test_files_to_send(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    files = archive.dicom_files([str(CT), str(SEG), str(tmp_path)])
    assert len(files) == 4 and {f.sop_class_uid for f in files} == {"1.2.840.10008.5.1.4.1.1.2",
                                                                     "1.2.840.10008.5.1.4.1.1.66.4"}
    with pytest.raises(UnetguiError, match="no such file"):
        archive.dicom_files([str(tmp_path / "missing")])


def test_every_archive_action_has_examples_and_every_option_a_help_text():
    from unetgui.cli import _parser

    def subcommands(parser):
        (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        return sub.choices

    actions = subcommands(subcommands(_parser())["archive"])
    assert set(actions) == {"echo", "find", "get", "send", "cache"}
    for name, parser in actions.items():
        assert "examples:\n  unetgui archive " + name in (parser.epilog or ""), name
        assert [a.dest for a in parser._actions if not a.help] == [], name
        assert parser.format_help().rstrip().splitlines()[-1].strip().startswith("unetgui archive"), name


def test_a_query_with_letters_beyond_ascii_is_sent_as_utf8_not_as_wildcards():
    """Undeclared, pydicom would encode 李 as "?", a wildcard that lists other patients."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    from pydicom import dcmread

    from unetgui.net.dimse import identifier

    ds = identifier("STUDY", {"PatientName": "李*", "PatientID": ""})
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    back = dcmread(DicomBytesIO(buffer.getvalue()), force=True)
    assert str(back.PatientName) == "李*"
    assert "SpecificCharacterSet" not in identifier("STUDY", {"PatientName": "DOE*"})


@pytest.mark.parametrize("changes, reason", [({"url": "http://user:secret@pacs/dicom-web"}, "not in the URL"),
                                             ({"url": "http://pacs/dicom-web", "timeout_s": float("nan")}, "time-out")])
def test_nodes_refuse_a_password_in_the_url_and_a_time_out_that_is_not_a_number(changes, reason):
    from unetgui.net.nodes import ArchiveError, Node

    with pytest.raises(ArchiveError, match=reason):
        Node("PACS", **changes)


def test_get_overwrites_only_a_folder_of_dicom_files(tmp_path, capsys):
    from unetgui import cli

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not the archive's")
    argv = ["archive", "get", "--host", "127.0.0.1", "--port", "9", "--called-aet", "PACS", "--series", "1.2.3",
            "--output", str(out), "--overwrite"]
    assert cli.main(argv) == 1
    assert "other than DICOM" in capsys.readouterr().err and (out / "notes.txt").exists()
