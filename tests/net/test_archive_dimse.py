"""The archive over DICOM (DIMSE) against a real Orthanc: C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE and the failures a
user meets (server down, wrong AE title, a hung server, cancel half way)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace

import numpy as np
import pydicom
import pytest

from net.conftest import CT, MR_GENERIC, MR_HITACHI, SEG
from unetgui.core.errors import Cancelled
from unetgui.core.progress import CancelToken
from unetgui.formats.inputs import open_image
from unetgui.net.nodes import ArchiveError, Node, read_origin
from unetgui.tasks import archive
from unetgui.tasks import archive_cache
from unetgui.tasks.archive import Query


def _uids(folder) -> tuple[str, str]:
    ds = pydicom.dcmread(next(p for p in sorted(folder.iterdir()) if p.suffix == ".dcm"), stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID


def _same_volume(folder: str, reference) -> None:
    got, expected = open_image(folder).volume, open_image(str(reference)).volume
    assert got.shape == expected.shape
    assert np.array_equal(got.voxels, expected.voxels)
    assert np.allclose(got.affine, expected.affine, atol=1e-6)


def test_echo_answers_in_a_round_trip(orthanc):
    seconds = archive.echo(orthanc.dimse())
    assert 0 < seconds < 5


def test_find_by_patient_date_modality_and_nothing(orthanc):
    node = orthanc.dimse()
    ct_study, ct_series = _uids(CT)
    hits = archive.find(node, Query(patient_id="99000"))
    ct = [h for h in hits if h.modality == "CT"]
    assert [h.series_uid for h in ct] == [ct_series] and {h.patient_id for h in hits} == {"99000"}
    hit = ct[0]
    assert (hit.study_uid, hit.patient_name, hit.study_date, hit.instances) == (ct_study, "JANCT000", "20030417", 3)
    assert hit.attributes["SeriesInstanceUID"] == ct_series and hit.attributes["PatientID"] == "99000"

    by_date = archive.find(node, Query(study_date="20171201-20171231"))
    assert [h.series_uid for h in by_date] == [_uids(MR_HITACHI)[1]]
    open_ended = {h.series_uid for h in archive.find(node, Query(study_date="20170101-"))}
    assert open_ended == {_uids(MR_HITACHI)[1], _uids(MR_GENERIC)[1]}

    mr = archive.find(node, Query(modality="MR"))
    assert {h.series_uid for h in mr} == {_uids(MR_HITACHI)[1], _uids(MR_GENERIC)[1]}
    assert all(h.modality == "MR" and h.patient_id == "dicom2nifti" and h.instances == 4 for h in mr)
    assert [h.study_date for h in mr] == sorted(h.study_date for h in mr)

    assert archive.find(node, Query(patient_name="JAN*", modality="CT"))[0].series_uid == ct_series
    assert archive.find(node, Query(patient_id="no-such-patient")) == []
    assert archive.find(node, Query(patient_id="99000", modality="PT")) == []


def test_too_many_results_are_a_clear_error(orthanc, monkeypatch):
    nodes = [orthanc.dimse()] + ([orthanc.web()] if orthanc.dicomweb else [])
    monkeypatch.setattr(archive, "MAX_STUDIES", 1)
    for node in nodes:
        with pytest.raises(ArchiveError, match=r"more than 1 studies match; narrow the query"):
            archive.find(node, Query())
    monkeypatch.setattr(archive, "MAX_STUDIES", 10)
    monkeypatch.setattr(archive, "MAX_SERIES", 1)
    for node in nodes:
        with pytest.raises(ArchiveError, match=r"more than 1 series match; narrow the query"):
            archive.find(node, Query(modality="MR"))


def _dicoms(folder) -> list[str]:
    """The retrieved instances (the folder also holds the record of where they came from)."""
    return sorted(n for n in os.listdir(folder) if n.endswith(".dcm"))


@pytest.mark.parametrize("via", ["get", "move"])
def test_retrieve_gives_the_same_voxels_and_geometry_as_the_files(orthanc, via):
    study, series = _uids(CT)
    steps = []
    folder = archive.retrieve(orthanc.dimse(), study, series, via=via, progress=lambda d, t, m: steps.append((d, t)))
    assert folder == archive_cache.cached_series(series)
    assert os.path.dirname(folder) == archive_cache.cache_folder() and len(_dicoms(folder)) == 3
    assert "ORTHANC@127.0.0.1" in read_origin(folder) and f"via {via}" in read_origin(folder)  # where it came from
    assert steps[-1] == (3, 3)
    _same_volume(folder, CT)
    assert os.listdir(archive_cache.cache_folder()) == [os.path.basename(folder)]  # no temporary folder left


def test_retrieve_finds_the_study_when_not_given(orthanc):
    folder = archive.retrieve(orthanc.dimse(), "", _uids(MR_GENERIC)[1])
    _same_volume(folder, MR_GENERIC)


def test_a_cached_series_is_not_retrieved_twice(orthanc, free_port_node):
    study, series = _uids(MR_HITACHI)
    folder = archive.retrieve(orthanc.dimse(), study, series)
    # the second retrieve asks a node where nothing listens: it must not ask at all
    assert archive.retrieve(free_port_node, study, series) == folder
    assert archive.retrieve(free_port_node, "", series, via="move") == folder
    _same_volume(folder, MR_HITACHI)


@pytest.mark.parametrize("via", ["get", "move"])
def test_cancel_half_way_leaves_nothing(orthanc, via):
    cancel, steps = CancelToken(), []

    def progress(done, total, message):
        steps.append(done)
        if done >= 1:
            cancel.set()

    study, series = _uids(CT)
    with pytest.raises(Cancelled):
        archive.retrieve(orthanc.dimse(), study, series, via=via, progress=progress, cancel=cancel)
    assert len(steps) == 1
    assert os.listdir(archive_cache.cache_folder()) == []  # neither the series nor a temporary folder
    assert archive_cache.cached_series(series) is None


def test_send_a_dicom_seg_with_c_store_and_find_it_under_its_study(orthanc):
    node = orthanc.dimse()
    assert archive.send(node, [str(SEG)]) == 1
    seg = pydicom.dcmread(SEG, stop_before_pixels=True)
    hits = archive.find(node, Query(patient_id="99000", modality="SEG"))
    hit = next(h for h in hits if h.series_uid == seg.SeriesInstanceUID)
    assert hit.study_uid == _uids(CT)[0] and hit.instances == 1
    folder = archive.retrieve(node, hit.study_uid, hit.series_uid)  # and back, whole
    assert pydicom.dcmread(os.path.join(folder, _dicoms(folder)[0])).SOPInstanceUID == seg.SOPInstanceUID


def test_send_refuses_what_is_not_dicom(orthanc, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(Exception, match="not a DICOM file"):
        archive.send(orthanc.dimse(), [str(tmp_path / "notes.txt")])
    with pytest.raises(Exception, match="no DICOM files"):
        archive.send(orthanc.dimse(), [str(tmp_path)])


# -- failures -----------------------------------------------------------------------------------------------------------

@pytest.fixture
def free_port_node():
    from net.conftest import free_port

    return Node("stopped", host="127.0.0.1", port=free_port(), called_aet="ORTHANC", move_port=free_port(),
                timeout_s=10.0)


def test_a_stopped_server_is_one_line_naming_the_node_quickly(free_port_node):
    start = time.monotonic()
    with pytest.raises(ArchiveError) as error:
        archive.echo(free_port_node)
    message = str(error.value)
    assert time.monotonic() - start < 5
    assert message.startswith(free_port_node.describe()) and "connection refused" in message and "\n" not in message
    with pytest.raises(ArchiveError, match="connection refused"):
        archive.find(free_port_node, Query(patient_id="99000"))
    with pytest.raises(ArchiveError, match="connection refused"):
        archive.retrieve(free_port_node, "1.2.3", "1.2.3.4")
    assert os.listdir(archive_cache.cache_folder()) == []


def test_a_wrong_called_ae_title_is_rejected(orthanc):
    node = orthanc.dimse(called_aet="NOT-ORTHANC")
    with pytest.raises(ArchiveError, match=r"rejected the association: Called AE title not recognised.*NOT-ORTHANC"):
        archive.echo(node)


def test_an_unregistered_calling_ae_title_is_refused_with_a_hint(orthanc):
    """Orthanc answers C-ECHO to anyone, but queries and retrieves only for the modalities it knows."""
    node = orthanc.dimse(calling_aet="STRANGER")
    assert archive.echo(node) > 0
    with pytest.raises(ArchiveError, match=r"aborted the query \(it may refuse this service to our AE title 'STRANGER'"):
        archive.find(node, Query(patient_id="99000"))


def test_a_hung_server_times_out(silent_port):
    node = Node("hung", host="127.0.0.1", port=silent_port, called_aet="X", timeout_s=1.0)
    start = time.monotonic()
    with pytest.raises(ArchiveError, match=r"^hung \(X@127.0.0.1:\d+\): no answer to the association request within 1 s"):
        archive.echo(node)
    assert time.monotonic() - start < 5


def test_a_series_the_archive_does_not_have(orthanc):
    with pytest.raises(ArchiveError, match="are the study and series UIDs right"):
        archive.retrieve(orthanc.dimse(), _uids(CT)[0], "1.2.3.4.5")
    with pytest.raises(ArchiveError, match="series was not found"):
        archive.retrieve(orthanc.dimse(), "", "1.2.3.4.5")
    assert os.listdir(archive_cache.cache_folder()) == []


def test_the_move_port_in_use_is_a_clear_error(orthanc, silent_port):
    study, series = _uids(CT)
    with pytest.raises(ArchiveError, match=f"cannot listen on port {silent_port} for C-MOVE"):
        archive.retrieve(orthanc.dimse(move_port=silent_port), study, series, via="move")


def test_no_identifier_reaches_the_logs(orthanc, caplog):
    """Even with pynetdicom's logger turned to DEBUG by someone else: its records of identifiers stay off."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="pynetdicom")
    node = orthanc.dimse()
    archive.find(node, Query(patient_id="99000"))
    study, series = _uids(CT)
    archive.retrieve(node, study, series, via="move")
    with pytest.raises(ArchiveError):
        archive.echo(orthanc.dimse(called_aet="WRONG"))
    for secret in ("99000", "JANCT000", "dicom2nifti"):
        assert secret not in caplog.text


# -- a misbehaving archive (a pynetdicom C-GET SCP of our own) --------------------------------------------------------

@pytest.fixture
def misbehaving():
    """A C-GET SCP that announces the CT's 3 instances, sends one, then does what ``behaviour["do"]`` says: "abort"
    the association, "hang", or send an instance of "another" series."""
    from pynetdicom import AE, StoragePresentationContexts, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

    instances = [pydicom.dcmread(p) for p in sorted(CT.iterdir()) if p.suffix == ".dcm"]
    behaviour = {"do": "abort"}

    def on_get(event):
        yield len(instances)
        yield 0xFF00, instances[0]
        if behaviour["do"] == "abort":
            event.assoc.abort()
            return
        if behaviour["do"] == "hang":
            time.sleep(1.5)  # longer than the node's time-out of 1 s
            return
        other = pydicom.dcmread(sorted(CT.iterdir())[1])
        other.SeriesInstanceUID = "1.2.3.999"
        yield 0xFF00, other
        yield 0xFF00, instances[2]

    ae = AE(ae_title="FAKE")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
    for cx in StoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, scp_role=True, scu_role=False)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_GET, on_get)])
    node = Node("fake", host="127.0.0.1", port=server.server_address[1], called_aet="FAKE", timeout_s=5)
    yield node, behaviour, instances[0]
    server.shutdown()


@pytest.mark.parametrize("do, reason", [("abort", r"the archive aborted the C-GET after 1 instance\(s\)$"),
                                        ("hang", r"the C-GET stopped after 1 instance\(s\): no answer within 1 s$"),
                                        ("another", "the archive sent an instance of another series")])
def test_a_retrieve_that_stops_half_way_or_sends_another_series_keeps_nothing(misbehaving, do, reason):
    node, behaviour, first = misbehaving
    behaviour["do"] = do
    node = replace(node, timeout_s=1.0)
    with pytest.raises(ArchiveError, match=rf"^fake \(FAKE@127.0.0.1:\d+\): {reason}"):
        archive.retrieve(node, first.StudyInstanceUID, first.SeriesInstanceUID)
    assert os.listdir(archive_cache.cache_folder()) == []
