"""Limits on untrusted input, checked from headers before anything is allocated (docs/formats.md, "Limits").

A crafted file can claim any size in a few bytes (a 177-byte PNG of 10^10 pixels, a DICOM header of
3,000,000 frames, an ``.npz`` of 2e12 voxels). Every reader checks what a header claims against these
limits and against the file's own size, and refuses with one line that names the file, instead of
allocating first. The limits sit far above any real CT or MR series (a whole-body CT of 2,000 slices of
512 x 512 is 5.2e8 voxels) and below what a desktop can hold.
"""

from __future__ import annotations

import math
import os
import stat

from unetgui.core.errors import FormatError

#: voxels of one volume (z * y * x): 2 GiB as int16, 4 GiB as float32
MAX_VOXELS = 1 << 30
#: rows or columns of one slice
MAX_SIDE = 16_384
#: slices of one volume, gap slices included, and frames of one multi-frame file
MAX_SLICES = 20_000
#: deflate's largest compression ratio: n bytes of gzip data unpack into at most this many times n
GZIP_RATIO = 1032
#: bytes of one volume in memory, whatever its data type: a float64 volume of MAX_VOXELS would be 8 GiB
MAX_BYTES = 4 << 30


def check_shape(shape: tuple[int, ...], what: str, error: type[FormatError] = FormatError,
                itemsize: int | None = None) -> None:
    """Raise ``error`` unless ``shape`` (any number of dimensions, e.g. ``(z, y, x)``) is within
    the limits and not empty, and (given the data type's ``itemsize``) within :data:`MAX_BYTES`; ``what``
    names the file or object for the message."""
    dims = [int(n) for n in shape]
    if any(n <= 0 for n in dims):
        raise error(f"{what}: no voxels (size {' x '.join(map(str, dims))})")
    if len(dims) >= 2 and max(dims[-2:]) > MAX_SIDE:
        raise error(f"{what}: slices of {dims[-2]} x {dims[-1]} pixels are larger than unetgui opens "
                    f"({MAX_SIDE} per side)")
    if len(dims) >= 3 and math.prod(dims[:-2]) > MAX_SLICES:
        raise error(f"{what}: {math.prod(dims[:-2]):,} slices are more than unetgui opens ({MAX_SLICES:,})")
    voxels = math.prod(dims)
    if voxels > MAX_VOXELS:
        raise error(f"{what}: {' x '.join(map(str, dims))} = {voxels:,} voxels is more than unetgui opens "
                    f"({MAX_VOXELS:,}); crop or downsample it first")
    if itemsize is not None and voxels * int(itemsize) > MAX_BYTES:
        raise error(f"{what}: {' x '.join(map(str, dims))} voxels of {int(itemsize)} bytes = "
                    f"{voxels * int(itemsize) / 2**30:.1f} GiB is more than unetgui opens ({MAX_BYTES / 2**30:.0f} GiB)")


def check_within(offset: int, size: int, file_size: int, what: str, error: type[FormatError] = FormatError) -> None:
    """Raise ``error`` unless ``size`` bytes from ``offset`` (both from a header) lie inside a file of
    ``file_size`` bytes: a skip, an offset or a length is checked before it is followed."""
    if offset < 0 or size < 0 or offset + size > file_size:
        raise error(f"{what}: the header claims {size:,} bytes at offset {offset:,}, but the file has {file_size:,}")


def is_regular_file(path: str) -> bool:
    """True for a regular file (or a link to one). FIFOs, sockets and devices (``/dev/zero``) are never
    opened: reading them can block forever or never end."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_regular_file(path: str) -> None:
    if os.path.exists(path) and not is_regular_file(path):
        raise FormatError(f"{path}: not a regular file (a pipe, device or socket); unetgui reads only files")
