"""Resident memory of memory-mapped arrays (the data set cache, engine/cache.py)."""

from __future__ import annotations

import mmap


def release(*arrays) -> None:
    """Drop the pages of memory-mapped ``arrays`` (or of the LabelView wrapping one) from this process: the
    kernel keeps them in its page cache and the next read maps them again. Without this, every page a scan
    or an epoch touched stays counted in the process's resident memory (RSS), which then grows with the data
    set although none of it is needed. A no-op for arrays in memory and where the system has no madvise."""
    for array in arrays:
        array = getattr(array, "labels", array)  # a LabelView's memory map
        handle = getattr(array, "_mmap", None)
        if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
            try:
                handle.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass
