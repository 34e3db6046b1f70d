"""Load a scanned series into a :class:`~unetgui.core.volume.Volume` in physical units."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut

from unetgui.core import limits
from unetgui.core.errors import DicomError
from unetgui.core.progress import CancelToken, ProgressFn, check, report
from unetgui.core.volume import SliceSource, Volume
from unetgui.formats.dicom.geometry import stack_geometry
from unetgui.formats.dicom import headers
from unetgui.formats.dicom.headers import FileHeader, FrameRef
from unetgui.formats.dicom.scan import Series

_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR")
_INT_DTYPES = (np.int16, np.uint16, np.int32)


def load_series(series: Series, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Volume:
    """Decode ``series`` into a volume: voxels ``(z, y, x)`` in physical units (HU for CT), RAS affine.

    Slices are in the order of their position along the slice normal; missing slices are inserted
    blank so that the affine stays exact. Integer data stays integer (int16 CT stays int16).
    Raises :class:`~unetgui.core.errors.DicomError` for unsupported or corrupt pixel data.
    """
    frames = series.frames
    geometry = stack_geometry(frames)
    rows, cols = series.size
    limits.check_shape((len(geometry.slots), rows, cols), f"series {series.key}", DicomError)
    out = np.empty((len(geometry.slots), rows, cols), _output_dtype(frames))
    out_index = {frame: k for k, frame in enumerate(geometry.slots) if frame is not None}
    by_file: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        by_file.setdefault(f.path, []).append(i)
    notes = list(series.notes) + list(geometry.warnings)
    for done, (path, members) in enumerate(by_file.items()):
        check(cancel)
        report(progress, done, len(by_file), f"decoding {os.path.basename(path)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings on odd values; failures raise DicomError
            pixels = _decode(frames[members[0]].file)
        for i in members:
            f = frames[i]
            multi = f.frame is not None and pixels.ndim > (3 if _is_colour(f.file) else 2)
            out = _store(out, out_index[i], *_physical(pixels[f.frame] if multi else pixels, f))
    report(progress, len(by_file), len(by_file), "done")
    first = frames[0].file
    if first.photometric == "MONOCHROME1" and not first.has_modality_lut:
        notes.append("MONOCHROME1 image: values were inverted so that higher values are brighter")
    if _is_colour(first):
        notes.append(f"colour image ({first.photometric}) converted to grayscale luminance")
    gap_slots = [k for k, frame in enumerate(geometry.slots) if frame is None]
    if gap_slots:
        present = [k for k, frame in enumerate(geometry.slots) if frame is not None]
        out[gap_slots] = out[present].min()
    sources = tuple(
        None if frame is None else SliceSource(
            frames[frame].path, frames[frame].file.sop_instance_uid, frames[frame].file.sop_class_uid,
            frames[frame].frame,
        )
        for frame in geometry.slots
    )
    return Volume(out, geometry.affine, first.modality, tuple(notes), series.info, sources)


def _is_colour(h: FileHeader) -> bool:
    return h.samples_per_pixel == 3 or h.photometric in _COLOUR


def _output_dtype(frames: tuple[FrameRef, ...]) -> np.dtype:
    """The narrowest dtype that holds every physical value the headers allow, float32 when scaled."""
    if any(_is_colour(f.file) or f.file.has_modality_lut for f in frames):
        return np.dtype(np.float32)
    if not all(float(f.slope).is_integer() and float(f.intercept).is_integer() for f in frames):
        return np.dtype(np.float32)
    lo, hi = np.inf, -np.inf
    for f in frames:
        bits = max(1, min(f.file.bits_stored, 32))
        smin, smax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if f.file.pixel_representation else (0, 2**bits - 1)
        ends = (smin * f.slope + f.intercept, smax * f.slope + f.intercept)
        lo, hi = min(lo, *ends), max(hi, *ends)
    for dt in _INT_DTYPES:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            break
    else:
        return np.dtype(np.float32)
    if dt is np.int32 and max(f.file.bits_stored for f in frames) <= 16:
        # e.g. signed 16-bit CT with intercept -1024: real values fit int16; _store widens if one does not
        return np.dtype(np.int16)
    return np.dtype(dt)


def _decode(header: FileHeader) -> np.ndarray:
    """Stored pixel values of a file: (rows, cols[, 3]) or (frames, rows, cols[, 3]); colour as RGB."""
    name = os.path.basename(header.path)
    headers.check_inflated_size(header.path)  # again: the file may have changed since the scan
    try:
        ds = pydicom.dcmread(header.path, force=True)
    except Exception as exc:
        raise DicomError(f"{name}: the file cannot be read ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomError(f"{name}: the file has no pixel data")
    if not ds.file_meta.get("TransferSyntaxUID"):
        ds.file_meta.TransferSyntaxUID = _guess_transfer_syntax(ds)
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        arr = ds.pixel_array
        if header.photometric == "PALETTE COLOR":
            arr = apply_color_lut(arr, ds)
        elif header.has_modality_lut and not _is_colour(header):
            arr = apply_modality_lut(arr, ds).astype(np.float32)
    except Exception as exc:
        raise DicomError(
            f"{name}: pixel data cannot be decoded ({getattr(syntax, 'name', syntax)}: {type(exc).__name__}: {exc})"
        ) from exc
    expected = (header.rows, header.columns, 3) if _is_colour(header) else (header.rows, header.columns)
    if header.number_of_frames > 1:
        expected = (header.number_of_frames, *expected)
    if tuple(arr.shape) != expected:
        raise DicomError(f"{name}: the decoded pixel data is {' x '.join(map(str, arr.shape))}, the header says "
                         f"{' x '.join(map(str, expected))}")
    return arr


def _guess_transfer_syntax(ds: pydicom.Dataset) -> str:
    """Files without file meta: pydicom tells how it parsed them."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if not ds.is_little_endian:
        return ExplicitVRBigEndian
    return ImplicitVRLittleEndian if ds.is_implicit_VR else ExplicitVRLittleEndian


def _physical(stored: np.ndarray, frame: FrameRef) -> tuple[np.ndarray, int]:
    """Stored values of one frame -> physical values (rows, cols), as ``values + offset``.

    The integer offset (RescaleIntercept of unscaled integer data, e.g. -1024 for CT) is returned
    apart so that it is added while writing into the output, without a temporary slice copy.
    """
    h = frame.file
    if _is_colour(h):
        rgb = stored.astype(np.float32)
        return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114, 0
    if h.has_modality_lut:
        return stored, 0  # the LUT was applied while decoding
    values = stored
    if h.photometric == "MONOCHROME1" and values.dtype.kind in "iu":
        bits = max(1, min(h.bits_stored, 32))
        values = (-1 - values.astype(np.int64)) if h.pixel_representation else ((2**bits - 1) - values.astype(np.int64))
    if values.dtype.kind != "f" and float(frame.slope).is_integer() and float(frame.intercept).is_integer():
        if frame.slope == 1:
            return values, int(frame.intercept)
        return values.astype(np.int64) * int(frame.slope), int(frame.intercept)
    return values.astype(np.float32) * np.float32(frame.slope) + np.float32(frame.intercept), 0


def _store(out: np.ndarray, k: int, values: np.ndarray, offset: int = 0) -> np.ndarray:
    """Write ``values + offset`` into slice ``k``, widening ``out`` when a value does not fit (headers
    that understate the range)."""
    fast = False
    if out.dtype.kind in "iu":
        if values.dtype.kind == "f":
            out = out.astype(np.float32)
        else:
            raw_min, raw_max = int(values.min()), int(values.max())
            vmin, vmax = raw_min + offset, raw_max + offset
            info = np.iinfo(out.dtype)
            if vmin < info.min or vmax > info.max:
                wider = next((dt for dt in _INT_DTYPES if np.iinfo(dt).min <= vmin and vmax <= np.iinfo(dt).max),
                             np.float32)
                out = out.astype(wider)
            if out.dtype.kind in "iu":
                info = np.iinfo(out.dtype)
                fast = info.min <= raw_min and raw_max <= info.max  # the stored values themselves fit too
    if not offset:
        out[k] = values
    elif fast:  # add in out's own dtype, straight into the slice: no temporary copy
        np.add(values, np.asarray(offset, out.dtype), out=out[k], dtype=out.dtype, casting="unsafe")
    else:
        out[k] = values.astype(np.int64) + offset if values.dtype.kind in "iu" else values + offset
    return out
