"""The archive over DICOMweb: QIDO-RS, WADO-RS and STOW-RS against a real Orthanc, and the answers a wrong URL or a
broken server gives (a small local HTTP server plays the broken one)."""

from __future__ import annotations

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pydicom
import pytest

from net.conftest import CT, MR_GENERIC, MR_HITACHI, SEG_OVERLAPS
from unetgui.core.errors import Cancelled
from unetgui.core.progress import CancelToken
from unetgui.formats.inputs import open_image
from unetgui.net.nodes import ArchiveError, Node
from unetgui.tasks import archive
from unetgui.tasks import archive_cache
from unetgui.tasks.archive import Query


def _uids(folder) -> tuple[str, str]:
    ds = pydicom.dcmread(next(p for p in sorted(folder.iterdir()) if p.suffix == ".dcm"), stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID


def test_echo_and_find_over_qido(orthanc):
    node = orthanc.web()
    assert 0 < archive.echo(node) < 5
    ct = archive.find(node, Query(patient_id="99000", modality="CT"))
    assert [h.series_uid for h in ct] == [_uids(CT)[1]]
    assert (ct[0].patient_name, ct[0].study_date, ct[0].instances) == ("JANCT000", "20030417", 3)
    assert ct[0].attributes["StudyInstanceUID"] == _uids(CT)[0]
    assert [h.series_uid for h in archive.find(node, Query(study_date="-20171231", modality="MR"))] == \
        [_uids(MR_HITACHI)[1]]
    assert {h.series_uid for h in archive.find(node, Query(patient_id="dicom2nif*"))} == \
        {_uids(MR_HITACHI)[1], _uids(MR_GENERIC)[1]}
    assert archive.find(node, Query(accession="no-such-accession")) == []


@pytest.mark.parametrize("series", [CT, MR_GENERIC], ids=["ct", "mr"])
def test_wado_retrieve_gives_the_same_voxels_and_geometry_as_the_files(orthanc, series):
    study, uid = _uids(series)
    folder = archive.retrieve(orthanc.web(), study, uid)
    got, expected = open_image(folder).volume, open_image(str(series)).volume
    assert np.array_equal(got.voxels, expected.voxels) and np.allclose(got.affine, expected.affine, atol=1e-6)
    assert os.listdir(archive_cache.cache_folder()) == [os.path.basename(folder)]


def test_wado_cancel_half_way_leaves_nothing(orthanc):
    cancel, steps = CancelToken(), []

    def progress(done, total, message):
        steps.append((done, total))
        cancel.set()

    with pytest.raises(Cancelled):
        archive.retrieve(orthanc.web(), *_uids(CT), progress=progress, cancel=cancel)
    assert steps == [(1, 3)]
    assert os.listdir(archive_cache.cache_folder()) == []


def test_send_a_dicom_seg_with_stow_and_find_it_under_its_study(orthanc):
    node = orthanc.web()
    assert archive.send(node, [str(SEG_OVERLAPS)]) == 1
    seg = pydicom.dcmread(SEG_OVERLAPS, stop_before_pixels=True)
    hits = archive.find(node, Query(patient_id="99000", modality="SEG"))
    assert [h.study_uid for h in hits if h.series_uid == seg.SeriesInstanceUID] == [_uids(CT)[0]]


def test_a_dicomweb_node_retrieves_with_wado_only(orthanc):
    with pytest.raises(Exception, match="WADO-RS only"):
        archive.retrieve(orthanc.web(), *_uids(CT), via="get")


@pytest.mark.parametrize("path, reason", [("/system", "HTTP 404"), ("/dicom-web/nothing-here", "HTTP 404"),
                                          ("", "HTTP 40")])  # Orthanc's own REST root: 400 to a search, 404 to WADO
def test_a_url_that_is_not_dicomweb(orthanc, path, reason):
    node = Node("not-web", url=f"{orthanc.rest}{path}", timeout_s=5)
    for call in (lambda: archive.echo(node), lambda: archive.find(node, Query(patient_id="99000")),
                 lambda: archive.retrieve(node, *_uids(CT))):
        with pytest.raises(ArchiveError) as error:
            call()
        message = str(error.value)
        assert message.startswith(node.describe()) and reason in message and "DICOMweb root" in message
        assert "\n" not in message
    assert os.listdir(archive_cache.cache_folder()) == []


def test_a_stopped_dicomweb_server(orthanc):
    from net.conftest import free_port

    node = Node("down", url=f"http://127.0.0.1:{free_port()}/dicom-web")
    with pytest.raises(ArchiveError, match=r"^down \(http://127.0.0.1:\d+/dicom-web\): cannot connect"):
        archive.echo(node)


def test_a_hung_dicomweb_server_times_out(silent_port):
    node = Node("hung", url=f"http://127.0.0.1:{silent_port}/dicom-web", timeout_s=1.0)
    with pytest.raises(ArchiveError, match="no answer to the search within 1 s"):
        archive.find(node, Query(patient_id="x"))


# -- a broken server ------------------------------------------------------------------------------------------------

STUDY, SERIES = "1.2.3", "1.2.3.4"
BOUNDARY = "unetgui-boundary"


class _Broken(BaseHTTPRequestHandler):
    """/json: its own JSON API; /html: a web page; /auth: needs u:p; /half: a series that stops half way;
    /garbage: a series whose part is no DICOM."""

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _send(self, status: int, kind: str, body: bytes, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        kind, _, rest = self.path.lstrip("/").partition("/")
        if kind == "auth" and self.headers.get("Authorization") != "Basic " + base64.b64encode(b"u:p").decode():
            return self._send(401, "text/plain", b"no")
        if kind == "json":
            return self._send(200, "application/json", b'["4b0c2a2e-uuid", "another"]')
        if kind == "html":
            return self._send(200, "text/html", b"<html>hello</html>")
        if "/series/" not in rest:  # QIDO: one series of 2 instances
            answer = [{"0020000D": {"vr": "UI", "Value": [STUDY]}, "0020000E": {"vr": "UI", "Value": [SERIES]},
                       "00201209": {"vr": "IS", "Value": [2]}}]
            return self._send(200, "application/dicom+json", json.dumps(answer).encode())
        head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        if kind == "garbage":
            body = head + b"not a DICOM file at all" + f"\r\n--{BOUNDARY}--\r\n".encode()
            return self._send(200, f'multipart/related; type="application/dicom"; boundary={BOUNDARY}', body)
        # "half": one whole instance, the start of the next, then the connection closes before Content-Length
        body = head + _instance() + b"\r\n" + head + _instance()[:300]
        self._send(200, f'multipart/related; type="application/dicom"; boundary={BOUNDARY}', body,
                   length=len(body) + 5000)


def _instance() -> bytes:
    import io

    ds = pydicom.dcmread(next(p for p in sorted(CT.iterdir()) if p.suffix == ".dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY, SERIES
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def broken():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("kind, reason", [("json", "not data sets in the DICOM JSON model"),
                                          ("html", "a search answered text/html")])
def test_a_server_that_answers_something_else(broken, kind, reason):
    node = Node(kind, url=f"{broken}/{kind}", timeout_s=5)
    with pytest.raises(ArchiveError, match=rf"^{kind} \(.*\): the answer is not DICOMweb \({reason}\): is the URL"):
        archive.echo(node)


def test_basic_authentication(broken, monkeypatch):
    node = Node("auth", url=f"{broken}/auth", username="u", timeout_s=5)
    with pytest.raises(ArchiveError, match="HTTP 401.*the user name or password was refused"):
        archive.echo(node, "wrong")
    assert archive.echo(node, "p") >= 0


@pytest.mark.parametrize("kind, reason", [("half", "stopped half way"), ("garbage", "not DICOMweb")])
def test_a_retrieve_that_breaks_keeps_nothing(broken, kind, reason):
    node = Node(kind, url=f"{broken}/{kind}", timeout_s=5)
    with pytest.raises(ArchiveError, match=reason):
        archive.retrieve(node, STUDY, SERIES)
    assert os.listdir(archive_cache.cache_folder()) == []
