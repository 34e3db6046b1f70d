"""Work with an archive (a PACS, Orthanc, dcm4chee): echo, find series, retrieve a series into the cache, send files.
No Qt: the app's dialogs (on a worker thread) and ``unetgui archive`` both call these.

A node is DIMSE (C-ECHO, C-FIND, C-GET or C-MOVE, C-STORE: net/dimse.py) or DICOMweb (QIDO-RS, WADO-RS, STOW-RS:
net/dicomweb.py); the functions here are the same for both. What an archive answers is untrusted: attributes become
one-line, JSON-safe text; counts and sizes are bounded (the ``MAX_`` limits below); a retrieved series is checked
before it is used. A series is retrieved whole or not at all: into a temporary folder inside :func:`cache_folder`,
checked (every file a DICOM instance of that series, as many as the archive said it sent), then renamed to its final
name (a hash of its SeriesInstanceUID), so that a folder under its final name is always a complete series; cancel and
any failure remove the temporary folder. After each retrieve the cache is kept under its size cap
(tasks/archive_cache.py: the cache's folders, listing, clearing and the cap). Nothing is logged with patient data,
and no password is stored.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from unetgui.core import limits
from unetgui.core.atomic import fsync_dir
from unetgui.core.errors import UnetguiError
from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core.textsafe import one_line
from unetgui.net.nodes import ArchiveError, Node, write_origin
from unetgui.tasks.archive_cache import (
    PARTIAL, UID_PATTERN, cache_cap, cache_folder, cached_series, check_uid, evict, final_folder, sweep,
)

log = logging.getLogger(__name__)

#: studies one query may return (more: an ArchiveError asking to narrow the query)
MAX_STUDIES = 1000
#: series one query may return, over all its studies
MAX_SERIES = 10_000
#: instances of one retrieved series (the slices a volume may have)
MAX_INSTANCES = limits.MAX_SLICES
#: bytes of one retrieved series, all its files together
MAX_SERIES_BYTES = 8 << 30
#: files one send may take
MAX_SEND_FILES = 100_000
#: attributes kept of one series (and its study), characters of one value, values of one multi-valued attribute
MAX_ATTRIBUTES, MAX_VALUE_CHARS, MAX_VALUES = 256, 1024, 64

VIA = ("auto", "get", "move", "wado")

#: the keys asked for at study and series level (empty: return keys; the query's values fill some of them)
STUDY_KEYS = ("StudyInstanceUID", "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyDate",
              "StudyTime", "AccessionNumber", "StudyDescription", "StudyID", "ModalitiesInStudy",
              "ReferringPhysicianName", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_KEYS = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "SeriesDate", "SeriesTime",
               "BodyPartExamined", "ProtocolName", "NumberOfSeriesRelatedInstances")

_DATE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")
_TEXT = re.compile(r"^[^\\\x00-\x1f\x7f]*$")  # no backslash (DICOM's value separator), no control character


@dataclass(frozen=True)
class Query:
    """What to look for; empty fields match anything. ``*`` and ``?`` are DICOM wildcards in the text fields;
    ``study_date`` is ``YYYYMMDD``, a range ``YYYYMMDD-YYYYMMDD``, ``-YYYYMMDD`` (up to) or ``YYYYMMDD-`` (from)."""

    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    modality: str = ""
    accession: str = ""
    study_description: str = ""

    def __post_init__(self) -> None:
        for name in ("patient_id", "patient_name", "study_date", "modality", "accession", "study_description"):
            value = str(getattr(self, name) or "").strip()
            object.__setattr__(self, name, value)
            if len(value) > 64 or not _TEXT.match(value):
                raise UnetguiError(f"the query's {name.replace('_', ' ')} must be at most 64 characters without a "
                                   "backslash or control character")
        if self.modality and not re.match(r"^[A-Za-z0-9*?]{1,16}$", self.modality):
            raise UnetguiError(f"the query's modality must be a DICOM modality such as CT or MR, got "
                               f"{self.modality!r}")
        _check_date(self.study_date)

    def study_keys(self) -> dict[str, str]:
        keys = dict.fromkeys(STUDY_KEYS, "")
        keys.update({k: v for k, v in (("PatientID", self.patient_id), ("PatientName", self.patient_name),
                                       ("StudyDate", self.study_date), ("AccessionNumber", self.accession),
                                       ("StudyDescription", self.study_description),
                                       ("ModalitiesInStudy", self.modality.upper())) if v})
        return keys

    def series_keys(self) -> dict[str, str]:
        keys = dict.fromkeys(SERIES_KEYS, "")
        if self.modality:
            keys["Modality"] = self.modality.upper()
        return keys


def _check_date(text: str) -> None:
    match = _DATE.match(text)
    if text and (not match or text == "-" or (match.group(2) is None and match.group(3) is not None)):
        match = None
    if text and match is None:
        raise UnetguiError(f"the study date must be YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-, got "
                           f"{one_line(text)[:40]!r}")
    dates = [d for d in (match.group(1), match.group(3)) if d] if text else []
    for d in dates:
        try:
            datetime.datetime.strptime(d, "%Y%m%d")
        except ValueError:
            raise UnetguiError(f"the study date {d} is not a date (YYYYMMDD)") from None
    if len(dates) == 2 and dates[0] > dates[1]:
        raise UnetguiError(f"the study date range {text} ends before it starts")


@dataclass(frozen=True)
class SeriesHit:
    """One series an archive found, with its study. Text is one line and JSON-safe (it came from the archive);
    ``instances`` is None where the archive does not say."""

    study_uid: str
    series_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    study_description: str
    accession: str
    modality: str
    series_number: str
    series_description: str
    instances: int | None
    attributes: dict


# -- untrusted attributes -------------------------------------------------------------------------------------------

_NUMERIC_VRS = ("US", "UL", "SS", "SL", "FL", "FD", "UV", "SV")
_SKIPPED_VRS = ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN")


def _value(value, vr: str):
    if isinstance(value, (bytes, bytearray)):
        return None
    if vr in _NUMERIC_VRS and isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    return one_line(value)[:MAX_VALUE_CHARS]


def attributes(ds) -> dict:
    """A data set an archive answered as ``{keyword: value}``: text one line, numbers finite, multi-valued
    attributes lists; sequences, binary and private attributes left out; bounded in number and length."""
    out: dict = {}
    try:
        elements = list(ds)
    except Exception:  # noqa: BLE001 - an undecodable answer: nothing to show (its text may hold values)
        return out
    for elem in elements:
        if len(out) >= MAX_ATTRIBUTES:
            break
        try:
            keyword, vr, value = elem.keyword, str(elem.VR), elem.value
        except Exception:  # noqa: BLE001 - one bad element does not hide the others
            continue
        if not keyword or vr in _SKIPPED_VRS or value is None:
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            values = [_value(v, vr) for v in list(value)[:MAX_VALUES]]
            out[keyword] = [v for v in values if v is not None]
        else:
            shown = _value(value, vr)
            if shown is not None:
                out[keyword] = shown
    return out


def _text(attrs: dict, keyword: str) -> str:
    value = attrs.get(keyword, "")
    return "\\".join(map(str, value)) if isinstance(value, list) else str(value)


def _count(value) -> int | None:
    try:
        n = int(str(value if not isinstance(value, list) else (value or [""])[0]).strip())
    except ValueError:
        return None
    return n if 0 <= n <= 10**7 else None


def _hit(study: dict, series: dict) -> SeriesHit:
    attrs = {**study, **series}
    return SeriesHit(_text(attrs, "StudyInstanceUID"), _text(attrs, "SeriesInstanceUID"), _text(attrs, "PatientID"),
                     _text(attrs, "PatientName"), _text(attrs, "StudyDate"), _text(attrs, "StudyDescription"),
                     _text(attrs, "AccessionNumber"), _text(attrs, "Modality"), _text(attrs, "SeriesNumber"),
                     _text(attrs, "SeriesDescription"), _count(attrs.get("NumberOfSeriesRelatedInstances", "")), attrs)


def _series_order(hit: SeriesHit):
    number = _count(hit.series_number)
    return hit.study_date, hit.study_uid, number if number is not None else 10**8, hit.series_uid


# -- echo and find ----------------------------------------------------------------------------------------------------

def echo(node: Node, password: str = "") -> float:
    """Whether the archive answers: C-ECHO (DIMSE) or a QIDO-RS search for one study (DICOMweb). The seconds of the
    round trip; ArchiveError otherwise."""
    if node.dicomweb:
        from unetgui.net import dicomweb

        return dicomweb.echo(node, password)
    from unetgui.net import dimse

    return dimse.echo(node)


def find(node: Node, query: Query, password: str = "", cancel: CancelToken | None = None) -> list[SeriesHit]:
    """The series matching ``query``, with their studies, sorted by study date, study and series number. At most
    :data:`MAX_STUDIES` studies and :data:`MAX_SERIES` series (more: ArchiveError asking to narrow the query). Series
    of another modality than asked for are dropped here too (an archive may ignore a key)."""
    start = time.monotonic()
    if node.dicomweb:
        from unetgui.net import dicomweb

        answers = dicomweb.find(node, query.study_keys(), query.series_keys(), MAX_STUDIES, MAX_SERIES, password,
                                cancel)
    else:
        from unetgui.net import dimse

        answers = dimse.find(node, query.study_keys(), query.series_keys(), MAX_STUDIES, MAX_SERIES, cancel)
    hits = []
    for study, series in answers:
        study_attrs = attributes(study)
        for one in series:
            hit = _hit(study_attrs, attributes(one))
            if not hit.series_uid or not UID_PATTERN.match(hit.series_uid) or not UID_PATTERN.match(hit.study_uid):
                continue
            if query.modality and "*" not in query.modality and "?" not in query.modality \
                    and hit.modality.upper() != query.modality.upper():
                continue
            hits.append(hit)
    log.info("%s: %d series in %d studies found in %.1f s", node.name, len(hits), len(answers),
             time.monotonic() - start)
    return sorted(hits, key=_series_order)



class _SeriesFolder:
    """The sink of a retrieve: each instance, checked to be of the series asked for, into its own file (named by a
    hash of its SOPInstanceUID, so an instance sent twice is one file); the number and bytes bounded."""

    def __init__(self, folder: str, study_uid: str, series_uid: str) -> None:
        self.folder, self.study_uid, self.series_uid = folder, study_uid, series_uid
        self.files = self.bytes = 0

    def __call__(self, data: bytes) -> None:
        import io

        from pydicom import dcmread

        if self.files >= MAX_INSTANCES:
            raise UnetguiError(f"the series has more than {MAX_INSTANCES:,} instances, more than unetgui opens")
        if self.bytes + len(data) > MAX_SERIES_BYTES:
            raise UnetguiError(f"the series is larger than {MAX_SERIES_BYTES / 2**30:.0f} GiB, more than unetgui opens")
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True,
                     specific_tags=["SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"])
        if str(ds.get("SeriesInstanceUID", "")) != self.series_uid:
            raise UnetguiError("the archive sent an instance of another series")
        sop = str(ds.get("SOPInstanceUID", "") or "")
        if not UID_PATTERN.match(sop):
            raise UnetguiError("the archive sent an instance without a valid SOPInstanceUID")
        name = hashlib.sha256(sop.encode("ascii")).hexdigest()[:32] + ".dcm"
        try:
            with open(os.path.join(self.folder, name), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # a folder under its final name holds whole files, even after a power loss
        except OSError as exc:
            raise UnetguiError(f"cannot write the archive cache ({exc.strerror or exc.__class__.__name__})") from None
        self.files, self.bytes = self.files + 1, self.bytes + len(data)


def _verify(node: Node, folder: str, study_uid: str, series_uid: str, expected: int | None) -> int:
    """Every file in ``folder`` a DICOM instance of the series (read back from disk), as many as the archive said."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    names = os.listdir(folder)
    for name in names:
        try:
            ds = dcmread(os.path.join(folder, name), stop_before_pixels=True,
                         specific_tags=["SeriesInstanceUID", "StudyInstanceUID"])
        except (OSError, InvalidDicomError, ValueError, EOFError) as exc:
            raise ArchiveError(f"{node.describe()}: a retrieved file is not DICOM ({exc.__class__.__name__})") from None
        if str(ds.get("SeriesInstanceUID", "")) != series_uid or (
                study_uid and str(ds.get("StudyInstanceUID", "")) != study_uid):
            raise ArchiveError(f"{node.describe()}: a retrieved file belongs to another series or study")
    if not names:
        raise ArchiveError(f"{node.describe()}: the archive sent no instance of this series")
    if expected is not None and len(names) != expected:
        raise ArchiveError(f"{node.describe()}: the archive said {expected} instance(s) but {len(names)} arrived; "
                           "the series was not kept")
    return len(names)


def _route(node: Node, via: str) -> str:
    if via not in VIA:
        raise UnetguiError(f"retrieve via one of {', '.join(VIA)}, not {one_line(via)[:20]!r}")
    if node.dicomweb:
        if via not in ("auto", "wado"):
            raise UnetguiError(f"{node.describe()} is a DICOMweb node: it retrieves with WADO-RS only")
        return "wado"
    if via == "wado":
        raise UnetguiError(f"{node.describe()} is a DIMSE node: retrieve with C-GET or C-MOVE")
    return "get" if via == "auto" else via


def study_of(node: Node, series_uid: str, password: str = "") -> str:
    """The StudyInstanceUID of a series, asked of the archive."""
    series_uid = check_uid(series_uid)
    if node.dicomweb:
        from unetgui.net import dicomweb

        return check_uid(dicomweb.locate(node, series_uid, password), "study UID")
    from unetgui.net import dimse

    return check_uid(dimse.locate(node, series_uid), "study UID")


def retrieve(node: Node, study_uid: str, series_uid: str, via: str = "auto", password: str = "",
             progress: ProgressFn | None = None, cancel: CancelToken | None = None,
             projects: Sequence[str] = ()) -> str:
    """Retrieve one series into the cache; its folder. ``via``: "get" (C-GET), "move" (C-MOVE to ``node.move_port``),
    "wado" (WADO-RS, a DICOMweb node's only way), "auto" (DICOMweb: wado; DIMSE: get). A series already in the cache
    is returned without asking the archive (and counts as used now). ``study_uid`` "" is looked up (one more query).
    ``progress(done, total, message)`` counts instances; ``cancel`` is checked between them. Whole or nothing (see
    the module's text). Afterwards the cache is brought under :func:`cache_cap`, least recently used series first;
    never this one nor one of a project (the data root's, and those of ``projects``: see :func:`cache_entries`)."""
    series_uid = check_uid(series_uid)
    cached = cached_series(series_uid, touch=True)
    if cached is not None:
        report(progress, 1, 1, "in the cache")
        return cached
    way = _route(node, via)
    cap = cache_cap()  # a wrong setting fails before the archive is asked
    study_uid = check_uid(study_uid, "study UID") if study_uid else study_of(node, series_uid, password)
    cache = cache_folder()
    os.makedirs(cache, exist_ok=True)
    sweep(cache)
    temporary = tempfile.mkdtemp(prefix=PARTIAL, dir=cache)
    start = time.monotonic()
    try:
        sink = _SeriesFolder(temporary, study_uid, series_uid)
        if way == "wado":
            from unetgui.net import dicomweb

            expected = dicomweb.series_size(node, study_uid, series_uid, password)
            check(cancel)
            dicomweb.retrieve_series(node, study_uid, series_uid, sink, password, progress, cancel, expected)
        else:
            from unetgui.net import dimse_retrieve

            get = dimse_retrieve.get_series if way == "get" else dimse_retrieve.move_series
            expected = get(node, study_uid, series_uid, sink, progress, cancel)
        count = _verify(node, temporary, study_uid, series_uid, expected)
        write_origin(temporary, node, study_uid, series_uid, way, count)  # the project keeps where it came from
        final = final_folder(series_uid)
        try:
            os.rename(temporary, final)
        except OSError:
            if cached_series(series_uid) is None:  # not a retrieve of the same series that finished first
                raise
            shutil.rmtree(temporary, ignore_errors=True)
        fsync_dir(cache)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    log.info("%s: retrieved %d instance(s) via %s in %.1f s", node.name, count, way, time.monotonic() - start)
    evict(cap, final, projects)
    return final


# -- send -------------------------------------------------------------------------------------------------------------

def dicom_files(paths: list[str]) -> list:
    """The DICOM files among ``paths`` (files, and folders searched recursively, hidden entries skipped), with the
    SOP class and transfer syntax of each (``dimse.Outgoing``). A file named directly must be DICOM; files in a
    folder that are not are skipped. None found, or more than :data:`MAX_SEND_FILES`: UnetguiError."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    from unetgui.net.dimse import Outgoing

    candidates: list[tuple[str, bool]] = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                candidates += [(os.path.join(folder, n), False) for n in sorted(names) if not n.startswith(".")]
                if len(candidates) > MAX_SEND_FILES:  # checked while walking: a home folder is not walked whole
                    raise UnetguiError(f"more than {MAX_SEND_FILES:,} files to send; send them in parts")
        elif os.path.isfile(path) and limits.is_regular_file(path):
            candidates.append((path, True))
        else:
            raise UnetguiError(f"{path}: no such file or folder")
        if len(candidates) > MAX_SEND_FILES:
            raise UnetguiError(f"more than {MAX_SEND_FILES:,} files to send; send them in parts")
    files = []
    for path, named in candidates:
        try:
            if not limits.is_regular_file(path):
                raise InvalidDicomError("not a regular file")
            ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
            sop_class, syntax = str(ds.get("SOPClassUID", "") or ""), str(ds.file_meta.get("TransferSyntaxUID", ""))
            if not (UID_PATTERN.match(sop_class) and UID_PATTERN.match(syntax) and UID_PATTERN.match(str(ds.get("SOPInstanceUID", "")))):
                raise InvalidDicomError("no SOP class, SOP instance or transfer syntax UID")
        except (OSError, InvalidDicomError, ValueError, EOFError, AttributeError) as exc:
            if named:
                raise UnetguiError(f"{path}: not a DICOM file that can be sent ({exc.__class__.__name__})") from None
            continue
        files.append(Outgoing(path, sop_class, syntax))
    if not files:
        raise UnetguiError(f"no DICOM files in {', '.join(paths)[:300]}")
    return files


def send(node: Node, paths: list[str], password: str = "", progress: ProgressFn | None = None,
         cancel: CancelToken | None = None) -> int:
    """Store DICOM files (``paths``: files and folders) on the archive: C-STORE (DIMSE) or STOW-RS (DICOMweb). The
    number stored; an archive that refuses some is an ArchiveError saying how many were stored."""
    files = dicom_files(paths)
    check(cancel)
    start = time.monotonic()
    if node.dicomweb:
        from unetgui.net import dicomweb

        stored = dicomweb.store(node, [f.path for f in files], password, progress, cancel)
    else:
        from unetgui.net import dimse

        stored = dimse.store(node, files, progress, cancel)
    log.info("%s: stored %d file(s) in %.1f s", node.name, stored, time.monotonic() - start)
    return stored


