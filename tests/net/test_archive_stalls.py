"""An archive that is slow, goes silent or stalls half way: a C-MOVE SCP of our own (pynetdicom) that stores the series
over its own association and sends no pending response, as dcm4chee does, and an HTTP server whose WADO-RS stream
stops sending without closing. The time-out of a retrieve counts from the last thing the archive sent, not from the
start, and a failure says what happened."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom
import pytest

from conftest import DATA
from net.conftest import CT, free_port
from unetgui.core.errors import Cancelled
from unetgui.core.progress import CancelToken
from unetgui.net import dicomweb
from unetgui.net.nodes import ArchiveError, Node, read_origin
from unetgui.tasks import archive
from unetgui.tasks import archive_cache

FMRI = DATA / "dicom2nifti-test-series" / "ge" / "fmri" / "001"  # 8 MR instances of one series, 75 kB
PAUSE_S = 0.4  # between two instances the slow archive stores
TIMEOUT_S = 1.0  # the node's time-out: the whole move of 8 instances takes more than 3 of them


def _instances(folder) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.iterdir()) if p.suffix == ".dcm"]


def _dicoms(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".dcm"))


# -- C-MOVE: an archive that sends no pending response ----------------------------------------------------------------

@pytest.fixture
def slow_archive():
    """A C-MOVE SCP ("FAKE") that, before it answers at all, stores ``behaviour["store"]`` instances of the series
    to the move destination over its own association, ``PAUSE_S`` apart; then it either answers (the final response
    counts them all: pynetdicom stores them again, to a second SCP that discards them) or, with ``behaviour["then"]
    == "silence"``, calls ``behaviour["silent"]`` and says nothing more until the test ends. Yields the node (its
    move port free), the behaviour, and the series' instances."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import MRImageStorage, StudyRootQueryRetrieveInformationModelMove

    instances = _instances(FMRI)
    behaviour = {"store": len(instances), "then": "answer", "silent": lambda: None, "stored": 0}
    ended = threading.Event()

    discard = AE(ae_title="DISCARD")
    discard.add_supported_context(MRImageStorage)
    discarding = discard.start_server(("127.0.0.1", 0), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)])
    move_port = free_port()

    def on_move(event):
        sender = AE(ae_title="FAKE")
        sender.add_requested_context(MRImageStorage, pydicom.uid.ExplicitVRLittleEndian)
        assoc = sender.associate("127.0.0.1", move_port, ae_title=event.request.MoveDestination)
        try:
            for i, ds in enumerate(instances[:behaviour["store"]]):
                if i:
                    time.sleep(PAUSE_S)
                if not assoc.is_established or not assoc.send_c_store(ds):
                    return
                behaviour["stored"] += 1
        finally:
            if assoc.is_established:
                assoc.release()
        if behaviour["then"] == "silence":
            behaviour["silent"]()
            ended.wait(30)  # longer than any time-out here: the test ends it
            return
        yield "127.0.0.1", discarding.server_address[1]
        yield len(instances)
        for ds in instances:
            yield 0xFF00, ds

    ae = AE(ae_title="FAKE")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(MRImageStorage, pydicom.uid.ExplicitVRLittleEndian)  # its own sub-operations
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_MOVE, on_move)])
    node = Node("fake", host="127.0.0.1", port=server.server_address[1], called_aet="FAKE", move_port=move_port,
                timeout_s=TIMEOUT_S)
    try:
        yield node, behaviour, instances
    finally:
        ended.set()
        server.shutdown()
        discarding.shutdown()


def test_a_c_move_without_pending_responses_that_takes_longer_than_the_time_out(slow_archive):
    node, _, instances = slow_archive
    steps = []
    start = time.monotonic()
    folder = archive.retrieve(node, instances[0].StudyInstanceUID, instances[0].SeriesInstanceUID, via="move",
                              progress=lambda d, t, m: steps.append((d, t)))
    assert time.monotonic() - start > 2.5 * TIMEOUT_S  # the instances kept it alive, not a response
    assert len(_dicoms(folder)) == len(instances) == 8 and "via move" in read_origin(folder)
    assert {pydicom.dcmread(os.path.join(folder, n)).SOPInstanceUID for n in _dicoms(folder)} == \
        {ds.SOPInstanceUID for ds in instances}
    assert steps[-1] == (8, 8)
    assert os.listdir(archive_cache.cache_folder()) == [os.path.basename(folder)]


def test_a_c_move_that_goes_silent_stops_after_the_time_out_and_keeps_nothing(slow_archive):
    node, behaviour, instances = slow_archive
    behaviour.update(store=2, then="silence")
    start = time.monotonic()
    with pytest.raises(ArchiveError, match=r"^fake \(FAKE@127.0.0.1:\d+\): the C-MOVE stopped after 2 instance\(s\): "
                                           r"nothing received for 1 s$"):
        archive.retrieve(node, instances[0].StudyInstanceUID, instances[0].SeriesInstanceUID, via="move")
    # 2 instances (a pause between them), then one time-out of silence; a few tenths for the associations
    assert PAUSE_S + TIMEOUT_S < time.monotonic() - start < PAUSE_S + 3 * TIMEOUT_S
    assert os.listdir(archive_cache.cache_folder()) == []


def test_a_c_move_that_sends_nothing_at_all_says_so(slow_archive):
    node, behaviour, instances = slow_archive
    behaviour.update(store=0, then="silence")
    with pytest.raises(ArchiveError, match=r"the C-MOVE stopped after 0 instance\(s\): nothing received for 1 s "
                                           rf"\(can the archive connect to port {node.move_port} of this machine"):
        archive.retrieve(node, instances[0].StudyInstanceUID, instances[0].SeriesInstanceUID, via="move")
    assert os.listdir(archive_cache.cache_folder()) == []


def test_cancel_while_a_c_move_is_silent_returns_at_once(slow_archive):
    node, behaviour, instances = slow_archive
    cancel, when = CancelToken(), []

    def silent():
        when.append(time.monotonic())
        cancel.set()

    behaviour.update(store=2, then="silence", silent=silent)
    node = replace(node, timeout_s=20.0)  # no time-out may end it: only the cancel
    with pytest.raises(Cancelled):
        archive.retrieve(node, instances[0].StudyInstanceUID, instances[0].SeriesInstanceUID, via="move",
                         cancel=cancel)
    assert time.monotonic() - when[0] < 1.0
    assert os.listdir(archive_cache.cache_folder()) == []


def test_a_c_move_that_sends_another_series_stops_before_it_ends(slow_archive):
    """The sink's refusal ends the wait too: the archive's final answer would come seconds later."""
    node, behaviour, instances = slow_archive
    other = pydicom.dcmread(sorted(FMRI.iterdir())[1])
    other.SeriesInstanceUID = "1.2.3.999"
    instances[1] = other  # the second instance stored is of another series
    node = replace(node, timeout_s=20.0)
    with pytest.raises(ArchiveError, match=r"^fake \(.*\): the archive sent an instance of another series$"):
        archive.retrieve(node, instances[0].StudyInstanceUID, instances[0].SeriesInstanceUID, via="move")
    assert behaviour["stored"] < 5  # the archive was still storing (and stops: the association is gone)
    assert os.listdir(archive_cache.cache_folder()) == []


# -- WADO-RS: a stream that stalls -------------------------------------------------------------------------------------

STUDY, SERIES = "1.2.3", "1.2.3.4"
BOUNDARY = "unetgui-boundary"


def _part() -> bytes:
    ds = pydicom.dcmread(sorted(CT.iterdir())[0])
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY, SERIES
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + buffer.getvalue() + b"\r\n"


class _Stalling(BaseHTTPRequestHandler):
    """QIDO: a series of 2 instances (its answer stalls half way under /search-stalls); WADO-RS: the multipart header,
    one whole part and 1 MB of the next, then nothing (the connection stays open) until the test ends."""

    ended: threading.Event

    def log_message(self, *args) -> None:
        pass

    def _stall(self) -> None:
        self.wfile.flush()
        self.ended.wait(30)

    def do_GET(self) -> None:
        if "/series/" not in self.path:
            answer = json.dumps([{"0020000D": {"vr": "UI", "Value": [STUDY]},
                                  "0020000E": {"vr": "UI", "Value": [SERIES]},
                                  "00201209": {"vr": "IS", "Value": [2]}}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if self.path.startswith("/search-stalls/"):
                self.wfile.write(answer[:20])
                return self._stall()
            self.wfile.write(answer)
            return None
        self.send_response(200)
        self.send_header("Content-Type", f'multipart/related; type="application/dicom"; boundary={BOUNDARY}')
        self.end_headers()  # no length: the body ends when the connection closes
        # dicomweb-client reads 1 MB at a time: the first part is decoded once more than that has come
        self.wfile.write(_part() + _part()[:400] + bytes(1 << 20))
        return self._stall()


@pytest.fixture
def stalling():
    ended = threading.Event()
    handler = type("Handler", (_Stalling,), {"ended": ended})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        ended.set()
        server.shutdown()
        server.server_close()


def test_a_wado_stream_that_stalls_says_no_data_and_keeps_nothing(stalling):
    node = Node("stalls", url=f"{stalling}/dicom-web", timeout_s=TIMEOUT_S)
    start = time.monotonic()
    with pytest.raises(ArchiveError, match=r"^stalls \(http://127.0.0.1:\d+/dicom-web\): the retrieve stopped after 1 "
                                           r"instance\(s\): no data for 1 s$"):
        archive.retrieve(node, STUDY, SERIES)
    assert time.monotonic() - start < 3 * TIMEOUT_S
    assert os.listdir(archive_cache.cache_folder()) == []


def test_a_search_answer_that_stalls_says_no_data(stalling):
    node = Node("stalls", url=f"{stalling}/search-stalls", timeout_s=TIMEOUT_S)
    with pytest.raises(ArchiveError, match=r"^stalls \(.*\): the search stopped half way: no data for 1 s$"):
        archive.echo(node)


def test_a_refused_dicomweb_connection_still_says_refused():
    node = Node("down", url=f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=TIMEOUT_S)
    refused = r"^down \(http://127.0.0.1:\d+/dicom-web\): cannot connect \(connection refused"
    with pytest.raises(ArchiveError, match=refused):
        archive.retrieve(node, STUDY, SERIES)
    with pytest.raises(ArchiveError, match=refused):
        dicomweb.retrieve_series(node, STUDY, SERIES, lambda data: None)
    assert os.listdir(archive_cache.cache_folder()) == []


def test_a_cancel_refuses_the_next_instance_of_a_c_get_at_once():
    """A C-GET from an archive that sends no pending responses: the cancel is seen at the next instance, which is
    refused (and the rest with it), so the retrieve ends with Cancelled instead of after the whole series."""
    from unetgui.core.errors import Cancelled
    from unetgui.net.dimse_retrieve import _Receiver

    kept, cancel = [], CancelToken()
    receiver = _Receiver(kept.append, cancel)

    class Instance:  # what pynetdicom hands a C-STORE handler: the instance's bytes on request
        def encoded_dataset(self, include_meta=True):
            return b"DICM"

    assert receiver(Instance()) == 0x0000 and kept == [b"DICM"]
    cancel.set()
    assert receiver(Instance()) == 0xA700 and receiver(Instance()) == 0xA700 and len(kept) == 1
    with pytest.raises(Cancelled):
        receiver.raise_error(None)
