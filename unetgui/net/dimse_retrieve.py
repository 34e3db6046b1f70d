"""Retrieving a series over DICOM networking (net/dimse.py's associations): C-GET (the archive sends over our
association) and C-MOVE (the archive connects to a storage SCP that runs here, on ``node.move_port``, only while the
retrieve runs). Every instance goes to a *sink* (``sink(data)``, one instance in the DICOM file format) that decides
what to keep; a sink that raises stops the retrieve with its error. Failures are one-line ArchiveErrors naming the
node, as in net/dimse.py.

A C-MOVE's wait is watched, not timed: many archives (dcm4chee by default) send no pending responses and only a final
one after the last instance, so the wait lasts as long as instances (or any of their PDUs) keep arriving, and stops
after ``node.timeout_s`` of silence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

from pydicom.dataset import Dataset
from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelMove, Verification,
)

from unetgui.core.errors import Cancelled, UnetguiError
from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.net.dimse import (
    MAX_CONTEXTS, PENDING, Sink, ae_for, identifier, open_association, status_code, status_text, stopped_error,
)
from unetgui.net.nodes import ArchiveError, Node


class _Receiver:
    """The C-STORE handler of a retrieve: each instance to the sink; the first error is kept and stops the rest."""

    def __init__(self, sink: Sink, cancel: CancelToken | None = None) -> None:
        self._sink, self._lock, self._cancel = sink, threading.Lock(), cancel
        self.received = 0
        # when the last instance arrived (with C-MOVE: the last PDU of one): the archive was still talking then
        self.last = time.monotonic()
        self.error: BaseException | None = None
        self.closed = False

    def heard(self, event) -> None:
        """A PDU arrived (EVT_PDU_RECV of the C-MOVE's storage SCP): a large instance is still coming."""
        self.last = time.monotonic()

    def __call__(self, event) -> int:
        with self._lock:
            if self._cancel is not None and self._cancel.is_set and self.error is None:
                # cancelled: the rest is refused at once (an archive without pending responses would otherwise send
                # the whole series before the cancel is seen)
                self.error = Cancelled()
            if self.closed or self.error is not None:
                return 0xA700  # out of resources: refused, the retrieve is being stopped
            try:
                self._sink(event.encoded_dataset(include_meta=True))
            except UnetguiError as exc:
                self.error = exc
                return 0xA700
            except Exception as exc:  # noqa: BLE001 - a decoding error of the instance: its text may hold values
                self.error = ArchiveError(f"an instance could not be read ({exc.__class__.__name__})")
                return 0xC000
            self.received += 1
            self.last = time.monotonic()
            return 0x0000

    def close(self) -> None:
        with self._lock:
            self.closed = True

    def raise_error(self, node: Node) -> None:
        if isinstance(self.error, Cancelled):
            raise self.error
        if self.error is not None:
            raise ArchiveError(f"{node.describe()}: {self.error}") from None


def _counts(status: Dataset) -> tuple[int, int, int, int]:
    """(remaining, completed, failed, warning) sub-operations of a C-GET or C-MOVE response (0 where absent)."""
    def n(keyword: str) -> int:
        try:
            return max(0, int(getattr(status, keyword, 0) or 0))
        except (TypeError, ValueError):
            return 0
    return (n("NumberOfRemainingSuboperations"), n("NumberOfCompletedSuboperations"),
            n("NumberOfFailedSuboperations"), n("NumberOfWarningSuboperations"))


def _follow(node: Node, responses: Iterable, receiver: _Receiver, what: str, progress: ProgressFn | None,
            cancel: CancelToken | None) -> int | None:
    """Follow the responses of a C-GET or C-MOVE: progress and cancel between instances, the final status checked.
    The number of instances the archive said it sent (None when its final answer does not say)."""
    total, last = 0, time.monotonic()
    for status, _answer in responses:
        if not status:
            raise stopped_error(node, what, max(last, receiver.last), receiver.received)
        last = time.monotonic()
        code = status_code(status)
        remaining, completed, failed, warning = _counts(status)
        if code in PENDING:
            total = max(total, remaining + completed + failed + warning)
            receiver.raise_error(node)
            report(progress, receiver.received, total, f"{receiver.received} of {total} instance(s)")
            check(cancel)
            continue
        receiver.raise_error(node)
        if receiver.received == 0 and not failed and code not in (0x0000, 0xB000):
            raise ArchiveError(f"{node.describe()}: the {what} failed ({status_text(status)}): are the study and "
                               "series UIDs right?")
        if code not in (0x0000, 0xB000) or failed:
            hint = " (the archive may need our AE title registered, or a transfer syntax we did not offer: try " \
                   "another way to retrieve)" if failed else ""
            raise ArchiveError(f"{node.describe()}: the {what} failed after {receiver.received} instance(s): "
                               f"{failed} failed, {status_text(status)}{hint}")
        if not any(hasattr(status, k) for k in ("NumberOfCompletedSuboperations", "NumberOfWarningSuboperations")):
            report(progress, receiver.received, max(total, receiver.received), "")
            return None  # the archive left the counts out of its final answer: nothing to check them against
        sent = completed + warning
        if sent == 0 and receiver.received == 0:
            raise ArchiveError(f"{node.describe()}: the archive sent no instance of this series (are the study and "
                               "series UIDs right?)")
        report(progress, receiver.received, max(total, sent), "")
        return sent
    raise stopped_error(node, what, last, receiver.received)


def _series_identifier(study_uid: str, series_uid: str) -> Dataset:
    return identifier("SERIES", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid})


def get_series(node: Node, study_uid: str, series_uid: str, sink: Sink, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> int:
    """C-GET one series; every instance goes to ``sink``. The number of instances the archive said it sent.

    The archive sends over our association, in the storage contexts we offer: pynetdicom's 120 common storage SOP
    classes (CT, MR, PET, SEG, enhanced CT/MR, ...) with the uncompressed transfer syntaxes, plus the C-GET context:
    121 of the 128 an association may carry. A compressed series arrives decompressed if the archive can transcode."""
    ae = ae_for(node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = []
    for cx in StoragePresentationContexts[:MAX_CONTEXTS - 1]:
        ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
        roles.append(build_role(cx.abstract_syntax, scp_role=True))
    receiver = _Receiver(sink, cancel)
    try:
        with open_association(node, ae, roles, [(evt.EVT_C_STORE, receiver)]) as assoc:
            responses = assoc.send_c_get(_series_identifier(study_uid, series_uid),
                                         StudyRootQueryRetrieveInformationModelGet)
            return _follow(node, responses, receiver, "C-GET", progress, cancel)
    finally:
        receiver.close()


def _storage_scp(node: Node, receiver: _Receiver):
    """A storage SCP on ``node.move_port`` (all interfaces: the archive connects from elsewhere), as our AE title,
    taking every storage SOP class in every transfer syntax."""
    if not node.move_port:
        raise ArchiveError(f"{node.describe()}: C-MOVE needs a move port (the port on this machine the archive sends "
                           "to, registered there with our AE title); or retrieve with C-GET")
    if node.tls:
        raise ArchiveError(f"{node.describe()}: C-MOVE over TLS would need a certificate for this machine; retrieve "
                           "with C-GET")
    ae = ae_for(node)
    ae.network_timeout = float(node.timeout_s)
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    try:
        return ae.start_server(("", int(node.move_port)), block=False, ae_title=node.calling_aet,
                               evt_handlers=[(evt.EVT_C_STORE, receiver), (evt.EVT_PDU_RECV, receiver.heard)])
    except OSError as exc:
        raise ArchiveError(f"{node.describe()}: cannot listen on port {node.move_port} for C-MOVE "
                           f"({exc.strerror or exc.__class__.__name__}: is another program using it?)") from None


class _Watchdog:
    """The time-out of a C-MOVE: it ends when neither a response nor anything of an instance has arrived for
    ``node.timeout_s`` (many archives, dcm4chee by default, send no pending response: they store the whole series,
    then answer once, and the instances arriving are the only sign that they work), when ``cancel`` is set, or when
    the sink refused an instance (an error the archive's final answer would report only at the end).

    pynetdicom waits for a response in ``assoc.dimse.get_msg(block=True)``, a queue read with the association's
    ``dimse_timeout``; here that is None (and so is ``network_timeout``, the idle timer of the association's reactor,
    paused during the C-MOVE anyway), and a thread that looks every :attr:`STEP` seconds wakes the wait by queueing
    ``(None, None)``, what pynetdicom itself queues when the connection closes. pynetdicom then aborts the
    association as after its own DIMSE time-out, in the thread that waited, and yields an empty status, which
    :meth:`watch` turns into Cancelled or the reason."""

    STEP = 0.05

    def __init__(self, node: Node, assoc, receiver: _Receiver, cancel: CancelToken | None) -> None:
        self._node, self._assoc, self._receiver, self._cancel = node, assoc, receiver, cancel
        self.answered = time.monotonic()  # when the last response arrived
        self.expired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._look, name="unetgui-c-move-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._assoc.dimse_timeout = self._assoc.network_timeout = None
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _look(self) -> None:
        while not self._done.wait(self.STEP):
            quiet = time.monotonic() - max(self.answered, self._receiver.last)
            self.expired = quiet >= self._node.timeout_s
            if self.expired or (self._cancel is not None and self._cancel.is_set) or self._receiver.error is not None:
                self._assoc.dimse.msg_queue.put((None, None))
                return

    def watch(self, responses: Iterable) -> Iterator:
        """The responses, the time of each noted; the empty status of a wait the watchdog ended raised as its reason:
        Cancelled, the sink's error, or the silence."""
        for status, answer in responses:
            self.answered = time.monotonic()
            if not status:
                check(self._cancel)
                self._receiver.raise_error(self._node)
                if self.expired:
                    node, received = self._node, self._receiver.received
                    hint = "" if received else (f" (can the archive connect to port {node.move_port} of this machine, "
                                                f"and does it know our AE title {node.calling_aet!r}?)")
                    raise ArchiveError(f"{node.describe()}: the C-MOVE stopped after {received} instance(s): nothing "
                                       f"received for {node.timeout_s:g} s{hint}")
            yield status, answer


def move_series(node: Node, study_uid: str, series_uid: str, sink: Sink, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None) -> int:
    """C-MOVE one series to ourselves (``node.calling_aet``), received by a storage SCP on ``node.move_port`` that
    runs only while this call does; every instance goes to ``sink``. The number the archive said it sent."""
    receiver = _Receiver(sink)
    server = _storage_scp(node, receiver)
    try:
        ae = ae_for(node)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        with open_association(node, ae) as assoc, _Watchdog(node, assoc, receiver, cancel) as watchdog:
            responses = assoc.send_c_move(_series_identifier(study_uid, series_uid), node.calling_aet,
                                          StudyRootQueryRetrieveInformationModelMove)
            return _follow(node, watchdog.watch(responses), receiver, "C-MOVE", progress, cancel)
    finally:
        receiver.close()
        for association in list(server.active_associations):  # shutdown() alone leaves them receiving
            association.abort()
        server.shutdown()
