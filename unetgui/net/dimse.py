"""DICOM networking (DIMSE) with pynetdicom: C-ECHO, C-FIND (Study Root, study and series level), C-GET, C-MOVE (to
a storage SCP that runs here while it retrieves) and C-STORE.

Every failure is an :class:`ArchiveError` of one line that names the node (``node.describe()``) and the reason:
connection refused, no answer within ``node.timeout_s`` (for a C-MOVE: nothing, neither a response nor an instance,
for that long), the association rejected (and why), a status that is not success. Nothing here logs identifiers:
pynetdicom's own logging of request and response identifiers is off, its logger passes warnings and errors only, and
exceptions it logs are reduced to their type (their text may hold values from a data set). Retrieved instances go
to a *sink*, ``sink(data)`` with ``data`` one instance in the DICOM file format (preamble, file meta, data set), that
decides what to keep (tasks/archive.py writes them into a folder and bounds their number and size); a sink that raises
stops the retrieve with its error.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID
from pynetdicom import (
    AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, StoragePresentationContexts, _config, build_role, evt,
)
from pynetdicom.pdu_primitives import A_ABORT, A_ASSOCIATE, A_P_ABORT
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove, Verification,
)

from unetgui.core.errors import Cancelled, UnetguiError
from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core.textsafe import one_line
from unetgui.net.nodes import ArchiveError, Node

log = logging.getLogger(__name__)

#: presentation contexts one association may request (the DICOM upper layer numbers them with odd bytes 1..255)
MAX_CONTEXTS = 128
#: the largest PDU we accept (bytes): fewer round trips than pynetdicom's 16 kB, a bounded buffer
MAX_PDU = 1 << 20
#: the statuses of a C-STORE that mean "stored" (success and the three warnings: coerced, elements discarded, ...)
STORED = (0x0000, 0xB000, 0xB006, 0xB007)
_PENDING = (0xFF00, 0xFF01)

Sink = Callable[[bytes], None]


class _Redact(logging.Filter):
    """pynetdicom's records, warnings and errors only, and without exception text (it may quote data set values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        if not isinstance(record.msg, str):
            record.msg, record.args = type(record.msg).__name__, ()
        record.exc_info = record.exc_text = None
        return True


def _quiet() -> None:
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.LOG_HANDLER_LEVEL = "none"
    logger = logging.getLogger("pynetdicom")
    if logger.level < logging.WARNING:
        logger.setLevel(logging.WARNING)
    for name in [n for n in logging.root.manager.loggerDict if n == "pynetdicom" or n.startswith("pynetdicom.")]:
        child = logging.getLogger(name)  # filters do not inherit: the records are created on each module's logger
        if not any(isinstance(f, _Redact) for f in child.filters):
            child.addFilter(_Redact())


_quiet()


@dataclass(frozen=True)
class Outgoing:
    """A file to store: its path, SOP class and transfer syntax (read from its header by the caller)."""

    path: str
    sop_class_uid: str
    transfer_syntax_uid: str


# -- associations ---------------------------------------------------------------------------------------------------

def _ae(node: Node) -> AE:
    ae = AE(ae_title=node.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = float(node.timeout_s)
    ae.maximum_pdu_size = MAX_PDU
    return ae


def _resolve(node: Node) -> None:
    try:
        socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ArchiveError(f"{node.describe()}: the host name {node.host!r} is not known ({exc.__class__.__name__})") \
            from None


def _why_not(node: Node, seen: dict, seconds: float) -> str:
    """Why an association was not established, from what its ACSE received and how long it took."""
    answer = seen.get("answer")
    if isinstance(answer, A_ASSOCIATE) and answer.result in (0x01, 0x02):
        reason = str(answer.reason_str)
        hint = ""
        if "called" in reason.lower():
            hint = f" (is {node.called_aet!r} the archive's AE title?)"
        elif "calling" in reason.lower():
            hint = f" (the archive does not know our AE title {node.calling_aet!r}: ask its administrator to register it)"
        return f"the archive rejected the association: {reason}{hint}"
    if isinstance(answer, A_ASSOCIATE):
        return "the archive accepted none of the services asked for (no presentation context accepted)"
    if isinstance(answer, (A_ABORT, A_P_ABORT)):
        return "the archive aborted the association request"
    if seen.get("open"):
        return f"no answer to the association request within {node.timeout_s:g} s"
    if seconds >= 0.9 * node.timeout_s:
        return f"no answer from {node.host}:{node.port} within {node.timeout_s:g} s"
    tls = ", or the TLS handshake failed (the archive's certificate refused)" if node.tls else ""
    return (f"cannot connect to {node.host}:{node.port} (connection refused{tls}: is the archive running, and are the "
            "host and port right?)")


@contextlib.contextmanager
def _association(node: Node, ae: AE, roles: list | None = None, handlers: list | None = None) -> Iterator:
    """An established association (released at the end, aborted on any error), or an :class:`ArchiveError`."""
    if node.dicomweb:
        raise ArchiveError(f"{node.describe()}: a DICOMweb node, not a DIMSE one")
    _resolve(node)
    seen: dict = {}

    def on_acse(event) -> None:
        if isinstance(event.primitive, (A_ASSOCIATE, A_ABORT, A_P_ABORT)):
            seen.setdefault("answer", event.primitive)

    def on_open(event) -> None:
        seen["open"] = True

    tls = (ssl.create_default_context(), node.host) if node.tls else None
    start = time.monotonic()
    assoc = ae.associate(node.host, int(node.port), ae_title=node.called_aet, max_pdu=MAX_PDU, ext_neg=roles,
                         tls_args=tls,
                         evt_handlers=[(evt.EVT_ACSE_RECV, on_acse), (evt.EVT_CONN_OPEN, on_open), *(handlers or [])])
    if not assoc.is_established:
        raise ArchiveError(f"{node.describe()}: {_why_not(node, seen, time.monotonic() - start)}")
    try:
        yield assoc
    except BaseException:
        if assoc.is_established:
            assoc.abort()
        raise
    if assoc.is_established:
        assoc.release()


def _code(status: Dataset) -> int:
    return int(getattr(status, "Status", 0xC000))


def _status_text(status: Dataset) -> str:
    comment = one_line(getattr(status, "ErrorComment", "") or "")[:120]
    return f"status 0x{_code(status):04X}" + (f": {comment}" if comment else "")


def _stopped(node: Node, what: str, since: float, received: int | None = None) -> ArchiveError:
    """A DIMSE exchange that ended without its answer, ``since`` (monotonic) the last answer: no answer in time, or
    the archive aborted the association (or closed the connection) before."""
    after = f" after {received} instance(s)" if received is not None else ""
    if time.monotonic() - since >= 0.9 * node.timeout_s:
        return ArchiveError(f"{node.describe()}: the {what} stopped{after}: no answer within {node.timeout_s:g} s")
    hint = "" if received else (f" (it may refuse this service to our AE title {node.calling_aet!r}: ask its "
                                "administrator to register it)")
    return ArchiveError(f"{node.describe()}: the archive aborted the {what}{after}{hint}")


# -- C-ECHO ---------------------------------------------------------------------------------------------------------

def echo(node: Node) -> float:
    """C-ECHO: the seconds from the association request to the echo's answer."""
    ae = _ae(node)
    ae.add_requested_context(Verification)
    start = time.monotonic()
    with _association(node, ae) as assoc:
        asked = time.monotonic()
        status = assoc.send_c_echo()
        if not status:
            raise _stopped(node, "echo", asked)
        if _code(status) != 0:
            raise ArchiveError(f"{node.describe()}: the echo failed ({_status_text(status)})")
        return time.monotonic() - start


# -- C-FIND ---------------------------------------------------------------------------------------------------------

def _identifier(level: str, keys: dict[str, str]) -> Dataset:
    ds = Dataset()
    if any(not str(v).isascii() for v in keys.values()):
        # declared as UTF-8: undeclared, pydicom would send Latin-1 and turn other characters into "?", a wildcard
        # that matches other patients
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _c_find(node: Node, assoc, identifier: Dataset, limit: int, what: str, cancel: CancelToken | None,
            said_limit: int | None = None) -> list[Dataset]:
    """The answers of one C-FIND; more than ``limit``: ArchiveError (naming ``said_limit``, the limit of the whole
    query, when given)."""
    found: list[Dataset] = []
    last = time.monotonic()
    for status, answer in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        if not status:
            raise _stopped(node, "query", last)
        last = time.monotonic()
        code = _code(status)
        if code in _PENDING:
            if answer is not None:
                found.append(answer)
            if len(found) > limit:
                raise ArchiveError(f"{node.describe()}: more than {said_limit or limit:,} {what} match; narrow the query "
                                   "(patient, study date, modality)")
            check(cancel)
        elif code == 0x0000:
            break
        else:
            raise ArchiveError(f"{node.describe()}: the query failed ({_status_text(status)})")
    return found


def find(node: Node, study_keys: dict[str, str], series_keys: dict[str, str], max_studies: int, max_series: int,
         cancel: CancelToken | None = None) -> list[tuple[Dataset, list[Dataset]]]:
    """C-FIND at study level with ``study_keys`` (keyword: value; empty values are return keys), then at series level
    with ``series_keys`` within each study found, on one association. The studies and each one's series, as the
    archive answered them (untrusted); at most ``max_studies`` studies and ``max_series`` series in all."""
    ae = _ae(node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    results = []
    with _association(node, ae) as assoc:
        studies = _c_find(node, assoc, _identifier("STUDY", study_keys), max_studies, "studies", cancel)
        total = 0
        for study in studies:
            uid = str(study.get("StudyInstanceUID", "") or "")
            if not uid:
                continue
            series = _c_find(node, assoc, _identifier("SERIES", {**series_keys, "StudyInstanceUID": uid}),
                             max_series - total, "series", cancel, max_series)
            total += len(series)
            results.append((study, series))
    return results


def locate(node: Node, series_uid: str) -> str:
    """The StudyInstanceUID of a series (a series-level C-FIND by its UID alone); ArchiveError when not found."""
    ae = _ae(node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    with _association(node, ae) as assoc:
        answers = _c_find(node, assoc, _identifier("SERIES", {"SeriesInstanceUID": series_uid,
                                                              "StudyInstanceUID": ""}), 10, "series", None)
    uids = {str(a.get("StudyInstanceUID", "") or "") for a in answers} - {""}
    if len(uids) != 1:
        raise ArchiveError(f"{node.describe()}: the series was not found (or its study is not unique); give its study "
                           "UID too")
    return uids.pop()


# -- C-GET and C-MOVE -----------------------------------------------------------------------------------------------

class _Receiver:
    """The C-STORE handler of a retrieve: each instance to the sink; the first error is kept and stops the rest."""

    def __init__(self, sink: Sink) -> None:
        self._sink, self._lock = sink, threading.Lock()
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
            raise _stopped(node, what, max(last, receiver.last), receiver.received)
        last = time.monotonic()
        code = _code(status)
        remaining, completed, failed, warning = _counts(status)
        if code in _PENDING:
            total = max(total, remaining + completed + failed + warning)
            receiver.raise_error(node)
            report(progress, receiver.received, total, f"{receiver.received} of {total} instance(s)")
            check(cancel)
            continue
        receiver.raise_error(node)
        if receiver.received == 0 and not failed and code not in (0x0000, 0xB000):
            raise ArchiveError(f"{node.describe()}: the {what} failed ({_status_text(status)}): are the study and "
                               "series UIDs right?")
        if code not in (0x0000, 0xB000) or failed:
            hint = " (the archive may need our AE title registered, or a transfer syntax we did not offer: try " \
                   "another way to retrieve)" if failed else ""
            raise ArchiveError(f"{node.describe()}: the {what} failed after {receiver.received} instance(s): "
                               f"{failed} failed, {_status_text(status)}{hint}")
        if not any(hasattr(status, k) for k in ("NumberOfCompletedSuboperations", "NumberOfWarningSuboperations")):
            report(progress, receiver.received, max(total, receiver.received), "")
            return None  # the archive left the counts out of its final answer: nothing to check them against
        sent = completed + warning
        if sent == 0 and receiver.received == 0:
            raise ArchiveError(f"{node.describe()}: the archive sent no instance of this series (are the study and "
                               "series UIDs right?)")
        report(progress, receiver.received, max(total, sent), "")
        return sent
    raise _stopped(node, what, last, receiver.received)


def _series_identifier(study_uid: str, series_uid: str) -> Dataset:
    return _identifier("SERIES", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid})


def get_series(node: Node, study_uid: str, series_uid: str, sink: Sink, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> int:
    """C-GET one series; every instance goes to ``sink``. The number of instances the archive said it sent.

    The archive sends over our association, in the storage contexts we offer: pynetdicom's 120 common storage SOP
    classes (CT, MR, PET, SEG, enhanced CT/MR, ...) with the uncompressed transfer syntaxes, plus the C-GET context:
    121 of the 128 an association may carry. A compressed series arrives decompressed if the archive can transcode."""
    ae = _ae(node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = []
    for cx in StoragePresentationContexts[:MAX_CONTEXTS - 1]:
        ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
        roles.append(build_role(cx.abstract_syntax, scp_role=True))
    receiver = _Receiver(sink)
    try:
        with _association(node, ae, roles, [(evt.EVT_C_STORE, receiver)]) as assoc:
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
    ae = _ae(node)
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
        ae = _ae(node)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        with _association(node, ae) as assoc, _Watchdog(node, assoc, receiver, cancel) as watchdog:
            responses = assoc.send_c_move(_series_identifier(study_uid, series_uid), node.calling_aet,
                                          StudyRootQueryRetrieveInformationModelMove)
            return _follow(node, watchdog.watch(responses), receiver, "C-MOVE", progress, cancel)
    finally:
        receiver.close()
        for association in list(server.active_associations):  # shutdown() alone leaves them receiving
            association.abort()
        server.shutdown()


# -- C-STORE --------------------------------------------------------------------------------------------------------

_UNCOMPRESSED = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, UID("1.2.840.10008.1.2.2")}


def _store_contexts(files: list[Outgoing]) -> list[tuple[str, list[str]]]:
    """One context per SOP class for uncompressed files (any uncompressed syntax will do: pynetdicom re-encodes),
    one per SOP class and transfer syntax for compressed ones (sent as they are)."""
    contexts: dict[tuple[str, str], list[str]] = {}
    for f in files:
        if UID(f.transfer_syntax_uid) in _UNCOMPRESSED:
            syntaxes = contexts.setdefault((f.sop_class_uid, ""), [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
            if f.transfer_syntax_uid not in syntaxes:
                syntaxes.append(f.transfer_syntax_uid)
        else:
            contexts.setdefault((f.sop_class_uid, f.transfer_syntax_uid), [f.transfer_syntax_uid])
    return [(sop, syntaxes) for (sop, _), syntaxes in contexts.items()]


def store(node: Node, files: list[Outgoing], progress: ProgressFn | None = None,
          cancel: CancelToken | None = None) -> int:
    """C-STORE ``files`` on one association; the number stored. Files the archive refuses are an ArchiveError that
    says how many were stored and how many refused, after trying all."""
    contexts = _store_contexts(files)
    if len(contexts) > MAX_CONTEXTS:
        raise ArchiveError(f"{node.describe()}: the files are of {len(contexts)} kinds (SOP class and transfer "
                           f"syntax); one association carries at most {MAX_CONTEXTS}: send them in parts")
    ae = _ae(node)
    for sop, syntaxes in contexts:
        ae.add_requested_context(sop, syntaxes)
    stored, refused, last = 0, 0, ""
    with _association(node, ae) as assoc:
        for i, f in enumerate(files):
            check(cancel)
            try:
                asked = time.monotonic()
                status = assoc.send_c_store(f.path)
            except ValueError:  # no accepted context for its SOP class or transfer syntax
                refused, last = refused + 1, "no accepted presentation context for its SOP class or transfer syntax"
                continue
            if not status:
                raise ArchiveError(f"{_stopped(node, 'store', asked)} ({stored} of {len(files)} file(s) stored)")
            if _code(status) in STORED:
                stored += 1
            else:
                refused, last = refused + 1, _status_text(status)
            report(progress, i + 1, len(files), f"{stored} stored")
    if refused:
        raise ArchiveError(f"{node.describe()}: stored {stored} of {len(files)} file(s); the archive refused "
                           f"{refused} ({last})")
    return stored

