"""DICOMweb with dicomweb-client: QIDO-RS (search), WADO-RS (retrieve a series, streamed) and STOW-RS (store).

A node's ``url`` is the DICOMweb root (Orthanc ``http://host:8042/dicom-web``, dcm4chee
``http://host:8080/dcm4chee-arc/aets/DCM4CHEE/rs``). HTTP basic authentication when ``node.username`` is set (the
password is given by the caller, never stored); ``node.timeout_s`` bounds the connection and each read. Every failure
is an :class:`ArchiveError` of one line naming the node: connection refused, a time-out, an HTTP error (401: the user
name or password; 404: the URL is no DICOMweb root), an answer that is not DICOMweb (not ``application/dicom+json``, not
a list of data sets in the DICOM JSON model, not multipart DICOM), a transfer that stops half way. Every answer is
bounded in bytes before it is read; nothing here logs a URL with its query (it holds patient IDs).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Iterator

import requests
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite
from urllib3.exceptions import ReadTimeoutError

from unetgui.core.errors import Cancelled, UnetguiError
from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core.textsafe import one_line
from unetgui.net.nodes import ArchiveError, Node

log = logging.getLogger(__name__)

#: the largest answer to a search (bytes): 1,000 studies of a few kB each fit many times
MAX_JSON_BYTES = 64 << 20
#: the largest answer to a retrieve of one series (bytes), the sum of its instances
MAX_SERIES_BYTES = 8 << 30
#: a STOW-RS request carries at most this many bytes of files (or one file, if larger) ...
STOW_BATCH_BYTES = 64 << 20
#: ... and at most this many files
STOW_BATCH_FILES = 64
_DICOM_JSON = ("application/dicom+json", "application/json")


class _Quiet(logging.Filter):
    """Warnings and errors only: debug records of dicomweb-client and urllib3 quote URLs with their query."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


for _name in ("dicomweb_client", "dicomweb_client.web", "urllib3.connectionpool"):
    if not any(isinstance(f, _Quiet) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(_Quiet())


class _TooLarge(Exception):
    pass


class _NotDicomweb(Exception):
    pass


def _checked(limit: int):
    """A response hook: a search answer that is not DICOM JSON is not DICOMweb (a web server's own JSON API, an HTML
    page); a body larger than ``limit`` bytes is stopped while it is read (streamed or not)."""

    def hook(response: requests.Response, *args, **kwargs) -> requests.Response:
        accept = str(response.request.headers.get("Accept", "")) if response.request is not None else ""
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if response.ok and response.status_code != 204 and "json" in accept and kind not in _DICOM_JSON:
            response.close()
            raise _NotDicomweb(f"a search answered {one_line(kind)[:60] or 'no content type'}")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            response.close()
            raise _TooLarge(f"the answer is {int(length):,} bytes, more than {limit:,}")
        chunks = response.iter_content

        def iter_content(chunk_size=1, decode_unicode=False):
            read = 0
            for chunk in chunks(chunk_size, decode_unicode):
                read += len(chunk)
                if read > limit:
                    response.close()
                    raise _TooLarge(f"the answer is more than {limit:,} bytes")
                yield chunk

        response.iter_content = iter_content
        return response

    return hook


class _Session(requests.Session):
    """dicomweb-client escapes every query value; some servers (Orthanc's DICOMweb plugin 1.7) match the escaped text.
    The wildcards ``*`` and ``?`` are legal unescaped in a query (RFC 3986) and go as they are."""

    def send(self, request, **kwargs):
        if request.url and "?" in request.url:
            base, query = request.url.split("?", 1)
            request.url = f"{base}?{query.replace('%2A', '*').replace('%3F', '?')}"
        return super().send(request, **kwargs)


def _client(node: Node, password: str, limit: int = MAX_JSON_BYTES):
    from dicomweb_client.api import DICOMwebClient

    if not node.dicomweb:
        raise ArchiveError(f"{node.describe()}: a DIMSE node, not a DICOMweb one")
    session = _Session()
    if node.username:
        session.auth = requests.auth.HTTPBasicAuth(node.username, password)
    session.hooks["response"].append(_checked(limit))
    client = DICOMwebClient(node.url.rstrip("/"), session=session, timeout=float(node.timeout_s))
    client.set_http_retry_params(retry=False)
    return client


def _stalled(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether a ConnectionError is a read that timed out after the answer began: requests raises urllib3's
    ReadTimeoutError, met while it reads a body (``Response.iter_content``, streamed or not), as a ConnectionError, the
    type it gives a refused connection too."""
    return any(isinstance(arg, ReadTimeoutError) or isinstance(getattr(arg, "reason", None), ReadTimeoutError)
               for arg in exc.args)


@contextlib.contextmanager
def _errors(node: Node, what: str) -> Iterator[None]:
    """Every failure of a request as one :class:`ArchiveError` naming the node."""
    try:
        yield
    except (ArchiveError, Cancelled):
        raise
    except requests.exceptions.HTTPError as exc:
        response = exc.response
        code = response.status_code if response is not None else 0
        reason = one_line(response.reason if response is not None else "")[:80]
        hint = {401: ": the user name or password was refused", 403: ": not allowed for this user",
                404: ": is the URL the archive's DICOMweb root (e.g. http://host:8042/dicom-web)?"}.get(code, "")
        if code == 400 and what == "search":
            hint = ": is the URL the archive's DICOMweb root (e.g. http://host:8042/dicom-web)?"
        raise ArchiveError(f"{node.describe()}: the {what} failed with HTTP {code} {reason}{hint}") from None
    except requests.exceptions.ChunkedEncodingError:
        raise ArchiveError(f"{node.describe()}: the {what} stopped half way (the connection broke)") from None
    except requests.exceptions.SSLError:
        raise ArchiveError(f"{node.describe()}: the TLS connection failed (the server's certificate was refused)") \
            from None
    except requests.exceptions.Timeout:
        raise ArchiveError(f"{node.describe()}: no answer to the {what} within {node.timeout_s:g} s") from None
    except requests.exceptions.ConnectionError as exc:
        if _stalled(exc):
            raise ArchiveError(f"{node.describe()}: the {what} stopped half way: no data for {node.timeout_s:g} s") \
                from None
        raise ArchiveError(f"{node.describe()}: cannot connect (connection refused or the host unknown: is the archive "
                           "running, and is the URL right?)") from None
    except requests.exceptions.RequestException as exc:
        raise ArchiveError(f"{node.describe()}: the {what} failed ({exc.__class__.__name__})") from None
    except _TooLarge as exc:
        raise ArchiveError(f"{node.describe()}: the {what} was stopped: {exc}") from None
    except _NotDicomweb as exc:
        raise ArchiveError(f"{node.describe()}: the answer is not DICOMweb ({exc}): is the URL the archive's DICOMweb "
                           "root?") from None
    except (ValueError, KeyError, TypeError, InvalidDicomError, EOFError) as exc:
        raise ArchiveError(f"{node.describe()}: the answer to the {what} is not DICOMweb "
                           f"({exc.__class__.__name__})") from None


def _datasets(answer) -> list[Dataset]:
    """QIDO answers (the DICOM JSON model) as data sets; anything else is not DICOMweb."""
    if not isinstance(answer, list):
        raise _NotDicomweb("not a list of data sets")
    out = []
    for item in answer:
        if not isinstance(item, dict) or not all(isinstance(k, str) and len(k) == 8 for k in item):
            raise _NotDicomweb("not data sets in the DICOM JSON model")
        try:
            out.append(Dataset.from_json(item))
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for malformed JSON; the text may quote values
            raise _NotDicomweb(f"a data set cannot be read: {exc.__class__.__name__}") from None
    return out


def _search(client, level: str, filters: dict[str, str], fields: list[str], limit: int, study_uid: str = "") -> list:
    kwargs = dict(search_filters={k: v for k, v in filters.items() if v}, fields=fields, limit=limit)
    if level == "studies":
        return client.search_for_studies(**kwargs)
    return client.search_for_series(study_instance_uid=study_uid or None, **kwargs)


def echo(node: Node, password: str = "") -> float:
    """A QIDO-RS search for one study: the seconds of the round trip."""
    client = _client(node, password)
    start = time.monotonic()
    with _errors(node, "search"):
        _datasets(client.search_for_studies(limit=1))
    return time.monotonic() - start


def find(node: Node, study_keys: dict[str, str], series_keys: dict[str, str], max_studies: int, max_series: int,
         password: str = "", cancel: CancelToken | None = None) -> list[tuple[Dataset, list[Dataset]]]:
    """QIDO-RS: the studies matching the non-empty ``study_keys`` (keywords; every key is asked for), then each one's
    series matching ``series_keys``. As :func:`unetgui.net.dimse.find`."""
    client = _client(node, password)
    results = []
    with _errors(node, "search"):
        studies = _datasets(_search(client, "studies", study_keys, list(study_keys), max_studies + 1))
        if len(studies) > max_studies:
            raise ArchiveError(f"{node.describe()}: more than {max_studies:,} studies match; narrow the query "
                               "(patient, study date, modality)")
        total = 0
        for study in studies:
            check(cancel)
            uid = str(study.get("StudyInstanceUID", "") or "")
            if not uid:
                continue
            series = _datasets(_search(client, "series", series_keys, list(series_keys), max_series - total + 1, uid))
            total += len(series)
            if total > max_series:
                raise ArchiveError(f"{node.describe()}: more than {max_series:,} series match; narrow the query")
            results.append((study, series))
    return results


def locate(node: Node, series_uid: str, password: str = "") -> str:
    """The StudyInstanceUID of a series (QIDO-RS over all series by its UID); ArchiveError when not found."""
    client = _client(node, password)
    with _errors(node, "search"):
        answers = _datasets(_search(client, "series", {"SeriesInstanceUID": series_uid}, ["StudyInstanceUID"], 10))
    uids = {str(a.get("StudyInstanceUID", "") or "") for a in answers} - {""}
    if len(uids) != 1:
        raise ArchiveError(f"{node.describe()}: the series was not found (or its study is not unique); give its study "
                           "UID too")
    return uids.pop()


def series_size(node: Node, study_uid: str, series_uid: str, password: str = "") -> int | None:
    """The number of instances the archive says the series holds (QIDO-RS), or None when it does not say."""
    client = _client(node, password)
    with _errors(node, "search"):
        answers = _datasets(_search(client, "series", {"SeriesInstanceUID": series_uid},
                                    ["NumberOfSeriesRelatedInstances"], 2, study_uid))
    if len(answers) != 1:
        raise ArchiveError(f"{node.describe()}: the series is not in that study on the archive")
    value = answers[0].get("NumberOfSeriesRelatedInstances")
    try:
        return int(value) if value not in (None, "") and 0 <= int(value) < 10**9 else None
    except (TypeError, ValueError):
        return None


def _file_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def retrieve_series(node: Node, study_uid: str, series_uid: str, sink, password: str = "",
                    progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                    expected: int | None = None) -> int:
    """WADO-RS one series, streamed, in the transfer syntax the archive stores (``transfer-syntax=*``); each
    instance to ``sink`` (bytes in the DICOM file format), cancel checked between instances. The number received."""
    client = _client(node, password, MAX_SERIES_BYTES)
    received = 0
    with _errors(node, "retrieve"):
        instances = client.iter_series(study_uid, series_uid, media_types=(("application/dicom", "*"),))
        try:
            for ds in instances:
                if not isinstance(ds, Dataset) or "SOPInstanceUID" not in ds:
                    raise _NotDicomweb("a part of the retrieve is not a DICOM instance")
                try:
                    sink(_file_bytes(ds))
                except UnetguiError as exc:
                    if isinstance(exc, Cancelled):
                        raise
                    raise ArchiveError(f"{node.describe()}: {exc}") from None
                received += 1
                report(progress, received, max(received, expected or 0), f"{received} instance(s)")
                check(cancel)
        except requests.exceptions.ConnectionError as exc:
            if not _stalled(exc):
                raise
            raise ArchiveError(f"{node.describe()}: the retrieve stopped after {received} instance(s): no data for "
                               f"{node.timeout_s:g} s") from None
        finally:
            close = getattr(instances, "close", None)
            if close is not None:
                close()
    if received == 0:
        raise ArchiveError(f"{node.describe()}: the archive sent no instance of this series")
    return received


def store(node: Node, paths: list[str], password: str = "", progress: ProgressFn | None = None,
          cancel: CancelToken | None = None) -> int:
    """STOW-RS ``paths`` (DICOM files) in requests of at most :data:`STOW_BATCH_FILES` files and about
    :data:`STOW_BATCH_BYTES`; the number stored. Files the archive refuses are an ArchiveError that says how many."""
    client = _client(node, password)
    stored = refused = 0
    batch: list[Dataset] = []
    size = 0

    def flush() -> None:
        nonlocal stored, refused, batch, size
        if not batch:
            return
        with _errors(node, "store"):
            answer = client.store_instances(batch)
        ok = len(answer.get("ReferencedSOPSequence", []) or []) if isinstance(answer, Dataset) else 0
        failed = len(answer.get("FailedSOPSequence", []) or []) if isinstance(answer, Dataset) else len(batch)
        stored, refused = stored + ok, refused + max(failed, len(batch) - ok)
        batch, size = [], 0
        report(progress, stored + refused, len(paths), f"{stored} stored")

    for path in paths:
        check(cancel)
        try:
            batch.append(dcmread(path))
        except (OSError, InvalidDicomError, ValueError) as exc:
            raise UnetguiError(f"{path}: cannot be read as DICOM ({exc.__class__.__name__})") from None
        size += os.path.getsize(path)
        if len(batch) >= STOW_BATCH_FILES or size >= STOW_BATCH_BYTES:
            flush()
    flush()
    if refused:
        raise ArchiveError(f"{node.describe()}: stored {stored} of {len(paths)} file(s); the archive refused {refused}")
    return stored
