"""The archive cache (tasks/archive.py retrieves into it): where retrieved series are kept, one folder per series
named by a hash of its SeriesInstanceUID (:func:`final_folder`), each complete (a retrieve writes into a temporary
``.partial-`` folder and renames it only after its check); the size cap kept after each retrieve (least recently
used series first, sparing the series just retrieved and those of projects), listing and clearing.

A project keeps only the path of its image: a series removed here is gone from the projects that used it until it
is retrieved again (it comes back under the same folder name; the labels stay in the project). The cache is not
encrypted (docs/archive.md says so).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass

from unetgui.core.atomic import fsync_dir
from unetgui.core.errors import UnetguiError
from unetgui.core.paths import data_root
from unetgui.core.textsafe import one_line
from unetgui.net.nodes import ORIGIN_FILE, read_origin, read_users

log = logging.getLogger(__name__)

CACHE = "archive_cache"
#: the name a retrieve's temporary folder starts with (and a folder being removed)
PARTIAL = ".partial-"
#: a temporary folder of a retrieve older than this (seconds) is left over from a crash and removed
STALE_SECONDS = 24 * 3600
#: the cache's size cap in GB (10^9 bytes) when the environment variable CACHE_CAP_VARIABLE does not give one
DEFAULT_CACHE_GB = 20.0
CACHE_CAP_VARIABLE = "UNETGUI_ARCHIVE_CACHE_GB"

UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_ENTRY = re.compile(r"^[0-9a-f]{32}$")  # a cache folder's name: see final_folder


def cache_folder() -> str:
    """Where retrieved series are kept: ``archive_cache`` under the data root (core/paths.py); not created here."""
    return os.path.join(data_root(), CACHE)


def final_folder(series_uid: str) -> str:
    return os.path.join(cache_folder(), hashlib.sha256(series_uid.encode("ascii")).hexdigest()[:32])


def check_uid(uid: str, what: str = "series UID") -> str:
    uid = str(uid or "").strip()
    if not (0 < len(uid) <= 64 and UID_PATTERN.match(uid)):
        raise UnetguiError(f"the {what} must be a DICOM UID (digits and dots, at most 64), got {one_line(uid)[:70]!r}")
    return uid


def cached_series(series_uid: str, touch: bool = False) -> str | None:
    """The cache folder of a completely retrieved series, or None (a folder under its final name is complete: it
    is renamed there only after its check). ``touch``: the series is being opened, so it counts as used now (its
    folder's modification time is the cache's last-used time, which decides what the size cap evicts first)."""
    try:
        path = final_folder(check_uid(series_uid))
    except UnetguiError:
        return None
    if os.path.isdir(path) and not os.path.islink(path) and any(n.endswith(".dcm") for n in os.listdir(path)):
        if touch:
            try:
                os.utime(path)
            except OSError:  # a read-only cache still serves the series
                pass
        return path
    return None


def sweep(cache: str) -> None:
    """Remove temporary folders a crashed retrieve left behind (old ones only: another process may be retrieving)."""
    now = time.time()
    for name in os.listdir(cache):
        path = os.path.join(cache, name)
        try:
            st = os.lstat(path)  # a link is not followed (and rmtree refuses one)
            if name.startswith(PARTIAL) and stat.S_ISDIR(st.st_mode) and now - st.st_mtime > STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass



@dataclass(frozen=True)
class CacheEntry:
    """One retrieved series in the cache. ``last_used``: seconds since the epoch, its folder's modification time
    (set when it was retrieved and each time it is opened from the cache); ``bytes``: its files together;
    ``series_uid`` and ``node`` come from its ``origin.json`` ("" when that is missing or does not fit the folder);
    ``projects``: the project folders with a series whose image is this folder (see :func:`cache_entries`)."""

    folder: str
    series_uid: str
    node: str
    origin: str
    files: int
    bytes: int
    last_used: float
    projects: tuple[str, ...] = ()


@dataclass(frozen=True)
class CacheUsage:
    """The series in the cache, their bytes together and the cap (bytes) the cache is kept under."""

    series: int
    bytes: int
    cap: int


def cache_cap() -> int:
    """The cache's size cap in bytes: ``$UNETGUI_ARCHIVE_CACHE_GB`` gigabytes (10^9 bytes; decimals allowed; 0
    keeps only the series just retrieved and those of projects), :data:`DEFAULT_CACHE_GB` when it is not set."""
    text = os.environ.get(CACHE_CAP_VARIABLE, "").strip()
    if not text:
        return int(DEFAULT_CACHE_GB * 1e9)
    try:
        gb = float(text)
    except ValueError:
        gb = math.nan
    if not (math.isfinite(gb) and 0 <= gb <= 1e6):
        raise UnetguiError(f"{CACHE_CAP_VARIABLE} must be the archive cache's size cap in GB (a number, e.g. 20), "
                           f"got {one_line(text)[:20]!r}")
    return int(gb * 1e9)


def size_text(n: int) -> str:
    """Bytes for people, in the cap's decimal units: "812 B", "3.4 MB", "1.2 GB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _origin_record(folder: str) -> dict:
    try:
        path = os.path.join(folder, ORIGIN_FILE)
        if not os.path.isfile(path) or os.path.getsize(path) > 10_000:
            return {}
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def _project_users(cache: str, projects: Sequence[str]) -> dict[str, list[str]]:
    """The name of each cache folder that holds a project's image -> those projects' folders. Projects looked at: the
    data root's own (untitled ones and sample copies, where every image opened without a project goes) and
    ``projects``; a project keeps only the path of its image, so a series removed here must be retrieved again."""
    from unetgui.project.housekeeping import KINDS
    from unetgui.project.store import Project, inside

    roots = []
    for sub, _ in KINDS:
        parent = os.path.join(data_root(), sub)
        try:
            roots += [os.path.join(parent, n) for n in sorted(os.listdir(parent))]
        except OSError:  # none yet
            pass
    for name in sorted(os.listdir(cache)):  # the projects each series recorded when it joined them (net/nodes.py)
        if _ENTRY.match(name):
            roots += read_users(os.path.join(cache, name))
    users: dict[str, list[str]] = {}
    cache = os.path.realpath(cache)
    for root in dict.fromkeys([*roots, *(os.path.abspath(p) for p in projects)]):
        try:
            project = Project.open(root)
            sources = [os.path.realpath(project.source_path(entry)) for entry in project.series]
        except (UnetguiError, OSError, ValueError, TypeError):
            continue  # not a project (or a damaged one, a path with a NUL: it opens nowhere)
        for source in sources:
            if inside(cache, source) and source != cache:
                users.setdefault(os.path.relpath(source, cache).split(os.sep)[0], []).append(root)
    return users


def _entry(cache: str, name: str, users: dict[str, list[str]]) -> CacheEntry | None:
    """The entry of the folder ``name`` in the cache; None for anything else (temporary folders, links, files)."""
    path = os.path.join(cache, name)
    files = size = 0
    try:
        st = os.lstat(path)
        if not (_ENTRY.match(name) and stat.S_ISDIR(st.st_mode)):
            return None
        with os.scandir(path) as found:
            for item in found:
                if item.is_file(follow_symlinks=False):
                    size += item.stat(follow_symlinks=False).st_size
                    files += int(item.name.endswith(".dcm"))
    except OSError:
        return None
    record = _origin_record(path)
    uid = str(record.get("series_uid", ""))
    if not (UID_PATTERN.match(uid) and os.path.basename(final_folder(uid)) == name):
        uid = ""  # a damaged or foreign record: the folder is still an entry, cleared with the whole cache
    return CacheEntry(path, uid, one_line(record.get("node", ""))[:64] if uid else "", read_origin(path), files, size,
                      st.st_mtime, tuple(dict.fromkeys(users.get(name, []))))


def cache_entries(projects: Sequence[str] = ()) -> list[CacheEntry]:
    """The series in the cache, least recently used first (the order the size cap evicts them in). ``projects``:
    project folders beyond the data root's own whose series are marked in :attr:`CacheEntry.projects`."""
    cache = cache_folder()
    if not os.path.isdir(cache):
        return []
    users = _project_users(cache, projects)
    entries = [e for e in (_entry(cache, n, users) for n in os.listdir(cache)) if e is not None]
    return sorted(entries, key=lambda e: (e.last_used, e.folder))


def cache_usage(entries: list[CacheEntry] | None = None) -> CacheUsage:
    """How full the cache is (``entries``: from :func:`cache_entries`, listed here when None)."""
    entries = cache_entries() if entries is None else entries
    return CacheUsage(len(entries), sum(e.bytes for e in entries), cache_cap())


def _remove(entry: CacheEntry) -> bool:
    """Delete one entry: first renamed to a temporary name (a folder under its final name stays complete, even if
    the deletion stops half way), then removed; never through a link (rmtree neither follows links inside a folder
    nor removes a folder that is a link)."""
    cache = os.path.dirname(entry.folder)
    try:
        if not stat.S_ISDIR(os.lstat(entry.folder).st_mode):
            return False
        trash = os.path.join(cache, f"{PARTIAL}removed-{os.urandom(8).hex()}")
        os.rename(entry.folder, trash)
    except OSError:  # gone meanwhile (another unetgui), or not ours to remove
        return False
    shutil.rmtree(trash, ignore_errors=True)  # what stays (a file in use on Windows) is swept as a stale partial
    return True


def clear_cache(series_uids: Sequence[str] | None = None) -> list[CacheEntry]:
    """Remove series from the cache: all (None; temporary folders a crash left behind go too), or those of
    ``series_uids`` (one that is not in the cache: UnetguiError, nothing removed). The entries removed. Only the
    cache's own folders are removed, never through a link; a series being retrieved now (its temporary folder is
    younger than :data:`STALE_SECONDS`) is left alone. A project whose image was here keeps its labels, and opens
    again once the series is retrieved again (it comes back under the same folder name)."""
    entries = cache_entries()
    if series_uids is not None:
        wanted = {os.path.basename(final_folder(check_uid(uid))): uid for uid in series_uids}
        missing = set(wanted) - {os.path.basename(e.folder) for e in entries}
        if missing:
            raise UnetguiError(f"not in the archive cache: {', '.join(sorted(wanted[m] for m in missing))[:300]}")
        entries = [e for e in entries if os.path.basename(e.folder) in wanted]
    removed = [e for e in entries if _remove(e)]
    if series_uids is None and os.path.isdir(cache_folder()):
        sweep(cache_folder())
    if removed:
        fsync_dir(cache_folder())
    log.info("archive cache: %d series (%s) removed", len(removed), size_text(sum(e.bytes for e in removed)))
    return removed


def evict(cap: int, keep: str, projects: Sequence[str]) -> list[CacheEntry]:
    """Bring the cache under ``cap`` bytes, least recently used first; ``keep`` (the series just retrieved) and the
    series of projects stay. A failure here does not fail the retrieve: it is logged."""
    try:
        entries = cache_entries(projects)
        total = sum(e.bytes for e in entries)
        removed = []
        for entry in entries:
            if total <= cap:
                break
            if entry.folder != keep and not entry.projects and _remove(entry):
                total -= entry.bytes
                removed.append(entry)
    except Exception as exc:  # noqa: BLE001 - the series is retrieved and checked: the cap waits for the next time
        log.warning("archive cache: the size cap could not be applied (%s)", exc.__class__.__name__)
        return []
    if removed:
        log.info("archive cache: %d least recently used series (%s) removed to keep it under %s", len(removed),
                 size_text(sum(e.bytes for e in removed)), size_text(cap))
    if total > cap:
        log.info("archive cache: %s, over its cap of %s: the rest is the series just retrieved and those of projects",
                 size_text(total), size_text(cap))
    return removed
