"""Atomic file writes, the one implementation every writer of the app uses (project, journal, model files,
NIfTI, DICOM-SEG, exports): a reader, or the next start after a crash, sees the old file or the new one,
never half of one.

A temporary file in the same folder (hidden, ending in the final name so that libraries that choose the
format by the suffix, like nibabel's ``.nii.gz``, still do), flushed and fsynced, renamed over the final
name, then the folder fsynced so the rename survives a power cut. On any error the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator

TEMP_PREFIX = ".partial-"


def temp_path(path: str) -> str:
    """A hidden, unique name next to ``path`` that ends in ``path``'s own name."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{name}")


def fsync_file(path: str) -> None:
    """Flush ``path``'s data to the disk (opened r+ because Windows refuses to fsync a read-only handle)."""
    with open(path, "r+b") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (no-op on Windows: folders cannot be opened for fsync there,
    NTFS journals the renames)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block succeeds the file written there replaces
    ``path`` durably; on any error (or if nothing was written) it is removed and ``path`` is untouched."""
    tmp = temp_path(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(os.path.dirname(os.path.abspath(path)))
    finally:
        remove_quietly(tmp)


def write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_with(path: str, writer: Callable[[str], None]) -> None:
    """``writer(tmp_path)`` writes the file; it then replaces ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_json(path: str, data) -> None:
    """``data`` as JSON (indented, ASCII: text from files arrives escaped, control characters included), atomically."""
    import json

    write_bytes(path, (json.dumps(data, indent=1, default=_undefined) + "\n").encode("utf-8"))


def _undefined(value):
    raise TypeError(f"{type(value).__name__} is not JSON")
