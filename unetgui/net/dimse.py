"""DICOM networking (DIMSE) with pynetdicom: associations, C-ECHO, C-FIND (Study Root, study and series level) and
C-STORE here; C-GET and C-MOVE (to a storage SCP that runs here while it retrieves) in net/dimse_retrieve.py.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID
from pynetdicom import AE, _config, evt
from pynetdicom.pdu_primitives import A_ABORT, A_ASSOCIATE, A_P_ABORT
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

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
PENDING = (0xFF00, 0xFF01)

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

def ae_for(node: Node) -> AE:
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
def open_association(node: Node, ae: AE, roles: list | None = None, handlers: list | None = None) -> Iterator:
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


def status_code(status: Dataset) -> int:
    return int(getattr(status, "Status", 0xC000))


def status_text(status: Dataset) -> str:
    comment = one_line(getattr(status, "ErrorComment", "") or "")[:120]
    return f"status 0x{status_code(status):04X}" + (f": {comment}" if comment else "")


def stopped_error(node: Node, what: str, since: float, received: int | None = None) -> ArchiveError:
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
    ae = ae_for(node)
    ae.add_requested_context(Verification)
    start = time.monotonic()
    with open_association(node, ae) as assoc:
        asked = time.monotonic()
        status = assoc.send_c_echo()
        if not status:
            raise stopped_error(node, "echo", asked)
        if status_code(status) != 0:
            raise ArchiveError(f"{node.describe()}: the echo failed ({status_text(status)})")
        return time.monotonic() - start


# -- C-FIND ---------------------------------------------------------------------------------------------------------

def identifier(level: str, keys: dict[str, str]) -> Dataset:
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
            raise stopped_error(node, "query", last)
        last = time.monotonic()
        code = status_code(status)
        if code in PENDING:
            if answer is not None:
                found.append(answer)
            if len(found) > limit:
                raise ArchiveError(f"{node.describe()}: more than {said_limit or limit:,} {what} match; narrow the query "
                                   "(patient, study date, modality)")
            check(cancel)
        elif code == 0x0000:
            break
        else:
            raise ArchiveError(f"{node.describe()}: the query failed ({status_text(status)})")
    return found


def find(node: Node, study_keys: dict[str, str], series_keys: dict[str, str], max_studies: int, max_series: int,
         cancel: CancelToken | None = None) -> list[tuple[Dataset, list[Dataset]]]:
    """C-FIND at study level with ``study_keys`` (keyword: value; empty values are return keys), then at series level
    with ``series_keys`` within each study found, on one association. The studies and each one's series, as the
    archive answered them (untrusted); at most ``max_studies`` studies and ``max_series`` series in all."""
    ae = ae_for(node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    results = []
    with open_association(node, ae) as assoc:
        studies = _c_find(node, assoc, identifier("STUDY", study_keys), max_studies, "studies", cancel)
        total = 0
        for study in studies:
            uid = str(study.get("StudyInstanceUID", "") or "")
            if not uid:
                continue
            series = _c_find(node, assoc, identifier("SERIES", {**series_keys, "StudyInstanceUID": uid}),
                             max_series - total, "series", cancel, max_series)
            total += len(series)
            results.append((study, series))
    return results


def locate(node: Node, series_uid: str) -> str:
    """The StudyInstanceUID of a series (a series-level C-FIND by its UID alone); ArchiveError when not found."""
    ae = ae_for(node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    with open_association(node, ae) as assoc:
        answers = _c_find(node, assoc, identifier("SERIES", {"SeriesInstanceUID": series_uid,
                                                              "StudyInstanceUID": ""}), 10, "series", None)
    uids = {str(a.get("StudyInstanceUID", "") or "") for a in answers} - {""}
    if len(uids) != 1:
        raise ArchiveError(f"{node.describe()}: the series was not found (or its study is not unique); give its study "
                           "UID too")
    return uids.pop()


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
    ae = ae_for(node)
    for sop, syntaxes in contexts:
        ae.add_requested_context(sop, syntaxes)
    stored, refused, last = 0, 0, ""
    with open_association(node, ae) as assoc:
        for i, f in enumerate(files):
            check(cancel)
            try:
                asked = time.monotonic()
                status = assoc.send_c_store(f.path)
            except ValueError:  # no accepted context for its SOP class or transfer syntax
                refused, last = refused + 1, "no accepted presentation context for its SOP class or transfer syntax"
                continue
            if not status:
                raise ArchiveError(f"{stopped_error(node, 'store', asked)} ({stored} of {len(files)} file(s) stored)")
            if status_code(status) in STORED:
                stored += 1
            else:
                refused, last = refused + 1, status_text(status)
            report(progress, i + 1, len(files), f"{stored} stored")
    if refused:
        raise ArchiveError(f"{node.describe()}: stored {stored} of {len(files)} file(s); the archive refused "
                           f"{refused} ({last})")
    return stored

