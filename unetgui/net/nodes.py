"""Archive nodes: the PACS or research archives unetgui talks to, kept in ``archive_nodes.json`` under the data root
(core/paths.py), so that the app's settings and ``unetgui archive --node NAME`` read the same list.

A node is either DIMSE (``host``, ``port``, ``called_aet``; C-ECHO, C-FIND, C-GET or C-MOVE, C-STORE) or DICOMweb
(``url``; QIDO-RS, WADO-RS, STOW-RS). ``calling_aet`` is our own AE title (default :data:`DEFAULT_AET`); C-MOVE
sends to ``move_port`` on this machine, where unetgui listens as ``calling_aet`` while it retrieves (the archive must
know that AE title, host and port: docs/archive.md). DICOMweb may use HTTPS and HTTP basic authentication
(``username``; the password is asked for, never stored), ``tls`` enables TLS for DIMSE (the system's CAs).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, fields, replace

from unetgui.core import atomic
from unetgui.core.errors import UnetguiError
from unetgui.core.paths import data_root
from unetgui.core.textsafe import one_line

DEFAULT_AET = "UNETGUI"
FILE = "archive_nodes.json"
_AET = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: 16 characters of the default repertoire, no backslash


class ArchiveError(UnetguiError):
    """An archive could not be reached or refused: one line naming the node and the reason, no patient data."""


@dataclass(frozen=True)
class Node:
    name: str
    host: str = ""
    port: int = 0
    called_aet: str = ""
    url: str = ""
    calling_aet: str = DEFAULT_AET
    move_port: int = 0  # C-MOVE destination port on this machine (0: retrieve with C-GET only)
    tls: bool = False
    username: str = ""
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", one_line(self.name))
        if not self.name:
            raise ArchiveError("an archive node needs a name")
        if self.url:
            if not re.match(r"^https?://[^\s]+$", self.url):
                raise ArchiveError(f"{self.name}: the DICOMweb URL must start with http:// or https://, got {self.url!r}")
            if "@" in self.url.split("/")[2]:
                raise ArchiveError(f"{self.name}: give the user name in its own field, not in the URL (a password in "
                                   "a URL would be shown and stored)")
        else:
            if not self.host or not 0 < int(self.port) < 65536:
                raise ArchiveError(f"{self.name}: a DIMSE node needs a host and a port 1..65535 (or give a DICOMweb URL)")
            if not _AET.match(self.called_aet or "") or self.called_aet.strip() != self.called_aet.strip(" "):
                raise ArchiveError(f"{self.name}: the archive's AE title must be 1 to 16 characters without a "
                                   f"backslash, got {self.called_aet!r}")
        if not _AET.match(self.calling_aet or ""):
            raise ArchiveError(f"{self.name}: our AE title must be 1 to 16 characters without a backslash, got "
                               f"{self.calling_aet!r}")
        if not 0 <= int(self.move_port) < 65536 or not math.isfinite(self.timeout_s) or self.timeout_s <= 0:
            raise ArchiveError(f"{self.name}: the move port must be 0..65535 and the time-out positive")

    @property
    def dicomweb(self) -> bool:
        return bool(self.url)

    def describe(self) -> str:
        """How the node is reached, in one line (no password)."""
        return f"{self.name} ({self.url})" if self.url else f"{self.name} ({self.called_aet}@{self.host}:{self.port})"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Node:
        known = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise ArchiveError("an archive node entry must be an object with a name")
        types = {f.name: f.type for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        for key, value in values.items():  # a hand-edited file: each field of its own type, or a clear message
            wanted = {"str": str, "int": int, "float": (int, float), "bool": bool}[str(types[key])]
            if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
                raise ArchiveError(f"archive node {one_line(d['name'])[:40]!r}: {key} must be a {types[key]}")
        return cls(**values)


def nodes_path() -> str:
    return os.path.join(data_root(), FILE)


def load_nodes(path: str | None = None) -> list[Node]:
    """The saved nodes (none when the file does not exist); a damaged file is an :class:`ArchiveError`."""
    path = path or nodes_path()
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            if os.fstat(f.fileno()).st_size > 1_000_000:
                raise ArchiveError(f"{path}: too large for a list of archive nodes")
            data = json.load(f)
    except (OSError, ValueError, RecursionError) as exc:
        raise ArchiveError(f"{path}: the archive nodes cannot be read ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise ArchiveError(f"{path}: not a list of archive nodes")
    return [Node.from_json(d) for d in data["nodes"]]


def save_nodes(nodes: list[Node], path: str | None = None) -> None:
    path = path or nodes_path()
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ArchiveError("two archive nodes have the same name")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic.write_json(path, {"nodes": [n.to_json() for n in nodes]})


def find_node(name: str, nodes: list[Node] | None = None) -> Node:
    nodes = load_nodes() if nodes is None else nodes
    for node in nodes:
        if node.name == name:
            return node
    known = ", ".join(n.name for n in nodes) or "none saved yet"
    raise ArchiveError(f"no archive node named {one_line(name)!r} (known: {known})")


ORIGIN_FILE = "origin.json"  # in a retrieved series' cache folder: where it came from (no patient data)


def write_origin(folder: str, node: Node, study_uid: str, series_uid: str, via: str, instances: int) -> None:
    import datetime

    atomic.write_json(os.path.join(folder, ORIGIN_FILE), {
        "archive": node.describe(), "node": node.name, "study_uid": study_uid, "series_uid": series_uid, "via": via,
        "instances": int(instances), "retrieved": datetime.datetime.now().astimezone().isoformat(timespec="seconds")})


def read_origin(folder: str) -> str:
    """"<archive> (via <way>, <date>)" for a folder a retrieve wrote, else "" (a damaged record is no origin)."""
    path = os.path.join(folder, ORIGIN_FILE)
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > 10_000:
            return ""
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return one_line(f"{d['archive']} (via {d['via']}, {d['retrieved']})")[:300]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


#: in a retrieved series' cache folder: the projects that use it as their image (the cache's size cap spares it)
USERS_FILE = "used_by.json"
MAX_USERS = 256
_MAX_USERS_BYTES = 256 * 1024


def read_users(folder: str) -> list[str]:
    """The project folders recorded as using the series in ``folder`` (a damaged record: none)."""
    path = os.path.join(folder, USERS_FILE)
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > _MAX_USERS_BYTES:
            return []
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        roots = d.get("projects") if isinstance(d, dict) else None
        if not isinstance(roots, list):
            return []
        return [r for r in roots if isinstance(r, str) and 0 < len(r) <= 4096 and "\x00" not in r][:MAX_USERS]
    except (OSError, ValueError, RecursionError):
        return []


def add_user(folder: str, project_root: str) -> None:
    """Record that the project at ``project_root`` uses the retrieved series in ``folder`` as its image: the cache's
    size cap then spares it even when the project is neither in the data folder nor among the app's recent ones
    (tasks/archive_cache.py). The newest :data:`MAX_USERS` are kept; a cache that cannot be written is left as is."""
    root = os.path.abspath(project_root)
    users = read_users(folder)
    if root in users:
        return
    try:
        atomic.write_json(os.path.join(folder, USERS_FILE), {"projects": (users + [root])[-MAX_USERS:]})
    except OSError:
        pass


def with_calling(node: Node, calling_aet: str | None) -> Node:
    return replace(node, calling_aet=calling_aet) if calling_aet else node
