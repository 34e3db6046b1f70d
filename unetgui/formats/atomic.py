"""Atomic file writes: a reader (or the next start after a crash) sees the old file or the new one,
never half of one. Temp file in the same folder, flush, fsync, rename, fsync of the folder."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator


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


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temp path next to ``path``; on success it replaces ``path`` durably, on error it is removed."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.partial")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_with(path: str, writer: Callable[[str], None]) -> None:
    """``writer(tmp_path)`` writes the file; it then replaces ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
