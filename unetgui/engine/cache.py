"""The data set cache on disk: training memory stays bounded whatever the number of cases (issue 14).

Two levels, each a folder of ``.npy`` files that training reads memory-mapped (a patch reads the pages it
needs; nothing holds a whole volume):

* ``native/<case>-<source key>/``: the image (int16 when its values are integers, else float32) and the
  labels (uint8) on their own grid, written once per case from DICOM/NIfTI/images. The key hashes the
  source files' paths, sizes and modification times, so a changed file is read again. The planner's
  fingerprint and the preprocessing's statistics read these maps (a few slices and a sample of voxels).
* ``prep-<preprocessing key>/<native entry>/``: the image normalised at the working size (float32), the labels at
  the working size, and a foreground index: up to ``FOREGROUND_SAMPLES`` locations ``(z, y, x)`` per label
  (nnU-Net's "class locations"), so that foreground patches are drawn without scanning the labels. The key
  hashes the preprocessing (mode, window, statistics, working size) and the native entry, so a change of
  either makes a new entry and an unchanged one is reused, never rewritten.

The app's projects use the image half of both levels (``images/<series>-<source key>/`` and the normalised
image in ``prep-<key>/``): a project's labels change with every edit, so they stay in memory (one byte
per voxel at the working size) and only the images, four bytes per voxel once normalised, live on disk.

``meta.json`` is written last in each entry, and says what validates it (issue 24): the entry's key (the hash
of its sources' paths, sizes and modification times, and of the preprocessing), and each array's shape, data
type and size in bytes. On reuse every ``.npy`` header is read (never unpickled: ``allow_pickle=False``) and
checked against the meta and the limits (``core/limits.py``, in bytes) *before* the file is mapped, the file's
size against the header, and the foreground index against the labels' shape. An entry that fails (a missing
or foreign meta, a wrong shape, an object dtype, a short file, a header claiming terabytes, a link) is removed
and rebuilt, with a note: ``cache entry native/x-1234 was damaged (labels.npy is 1,024 bytes, 4,224
expected): rebuilt``.

Links: the cache is written only into real folders. Every folder below the cache root (``native/``,
``images/``, ``prep-*/``) that is a symbolic link makes writing stop with one line, so a data set cannot
redirect what training writes (e.g. ``native -> /home/me``); an entry that is a link is damaged: the link is
removed (never what it points to) and a real entry built. The root itself is checked by the caller
(:func:`check_root`): the default ``.unetgui-cache`` inside a data set must be a real folder of it, while a
folder the user names (``--cache``) may be a link: the user chose it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from unetgui.core import atomic, limits
from unetgui.core.errors import FormatError, UnetguiError
from unetgui.core.memory import release
from unetgui.core.textsafe import printable
from unetgui.core.volume import MAX_LABEL, UNANNOTATED
from unetgui.engine.data import Case
from unetgui.engine.preprocessing import Preprocessing, resize_slices

FORMAT = 2  # 2: entries carry their key and their arrays' shape, dtype and size (issue 24)
FOREGROUND_SAMPLES = 10_000
MAX_FOREGROUND = 2 * FOREGROUND_SAMPLES + 1_000  # locations per label in a valid index (the sample's spread)
MAX_META_BYTES = 4 << 20
_CHUNK = 16  # slices normalised and resized at a time
_IMAGE_DTYPES = ("<i2", "<f4")  # native: int16 or float32; preprocessed: float32
_LABEL_DTYPES = ("|u1",)


class Damaged(Exception):
    """A cache entry that fails its checks; the message says which check (internal: the entry is rebuilt)."""


@dataclass(frozen=True)
class NativeEntry:
    """A case on its own grid, memory-mapped."""

    case_id: str
    folder: str
    voxels: np.ndarray  # (z, y, x) memory map
    labels: np.ndarray  # (z, y, x) uint8 memory map
    modality: str
    spacing_yx: tuple[float, float]
    values: tuple[int, ...] = ()  # the label values present (0 and 255 left out)


def source_key(paths: list[str], recipe: str = "") -> str:
    """A hash of the files at ``paths`` (folders: every file inside): path, size, modification time; and of
    ``recipe`` (how the entry is made from them, e.g. a label mapping)."""
    digest = hashlib.sha256(f"{FORMAT}\0{recipe}\n".encode())
    for path in paths:
        files = [path] if os.path.isfile(path) else sorted(
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)
        for file in files:
            try:
                st = os.stat(file)
                digest.update(f"{os.path.abspath(file)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except (OSError, ValueError):  # a broken link in a folder: its absence is its identity
                digest.update(f"{os.path.abspath(file)}\0-\n".encode(errors="replace"))
    return digest.hexdigest()[:16]


def check_root(root: str, data_set: str) -> None:
    """Refuse the default cache folder ``root`` of the data set folder ``data_set`` when it is a symbolic link or
    lies outside the data set: training must not write where a data set's link points. A folder the user names
    with ``--cache`` is not checked here (it may be a link: the user chose it)."""
    inside = os.path.realpath(data_set)
    if os.path.islink(root) or os.path.commonpath([inside, os.path.realpath(root)]) != inside:
        target = os.path.realpath(root)
        raise UnetguiError(f"{printable(root)} is a symbolic link (to {printable(target)}): unetgui does not write "
                           "its cache through links out of the data set; remove the link, or name a cache folder "
                           "with --cache")


def _subfolder(root: str, name: str) -> str:
    """``root/name``, created when missing; a symbolic link there stops the writing (see the module docstring)."""
    path = os.path.join(root, name)
    if os.path.islink(path):
        raise UnetguiError(f"{printable(path)} is a symbolic link (to {printable(os.path.realpath(path))}): unetgui "
                           "writes its cache only into real folders; remove the link or choose another cache (--cache)")
    os.makedirs(path, exist_ok=True)
    return path


def _safe(case_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in case_id)[:80] or "case"


def _regular(path: str, name: str) -> os.stat_result:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise Damaged(f"{name} is missing") from exc
    if not stat.S_ISREG(st.st_mode):
        raise Damaged(f"{name} is not a regular file")
    return st


def _read_meta(folder: str, key: str) -> dict:
    """The meta of the entry at ``folder`` whose key must be ``key``; :class:`Damaged` when unusable."""
    path = os.path.join(folder, "meta.json")
    if _regular(path, "meta.json").st_size > MAX_META_BYTES:
        raise Damaged("meta.json is too large")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError, RecursionError) as exc:
        raise Damaged("meta.json is not readable JSON") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise Damaged("meta.json is of another version")
    if meta.get("key") != key:
        raise Damaged("meta.json belongs to other sources")
    return meta


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) of the ``.npy`` header at ``f``'s position (versions 1 and 2; at most
    10,000 bytes of header are read: numpy's own cap)."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f".npy version {version}")
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)


def _header(path: str, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes the file must have) from the ``.npy`` header at ``path``, read without mapping."""
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype = _read_header(f)
            offset = f.tell()
    except (OSError, ValueError, TypeError, SyntaxError) as exc:
        raise Damaged(f"{name} has no valid .npy header") from exc
    if fortran or dtype.hasobject or len(shape) != 3:
        raise Damaged(f"{name} holds {'object' if dtype.hasobject else dtype.str} data of shape {shape}")
    try:
        limits.check_shape(shape, name, itemsize=dtype.itemsize)
    except FormatError as exc:
        raise Damaged(f"{name} claims {' x '.join(map(str, shape))} values of {dtype.itemsize} byte(s), beyond "
                      "the limits") from exc
    return tuple(int(n) for n in shape), dtype, offset + math.prod(shape) * dtype.itemsize


def _array_info(folder: str, name: str) -> dict:
    shape, dtype, size = _header(os.path.join(folder, f"{name}.npy"), f"{name}.npy")
    return {"shape": list(shape), "dtype": dtype.str, "bytes": size}


def _check_array(folder: str, name: str, meta: dict, dtypes: tuple[str, ...]) -> tuple[int, ...]:
    """The shape of ``name.npy`` after checking it against the entry's meta, the limits and its file size."""
    file = f"{name}.npy"
    st = _regular(os.path.join(folder, file), file)
    want = (meta.get("arrays") or {}).get(name)
    shape, dtype, size = _header(os.path.join(folder, file), file)
    if not isinstance(want, dict) or dtype.str not in dtypes or want.get("dtype") != dtype.str:
        raise Damaged(f"{file} holds {dtype.str} data, its entry says {printable(want, 80)}")
    if want.get("shape") != list(shape):
        raise Damaged(f"{file} is {' x '.join(map(str, shape))}, its entry says {printable(want.get('shape'), 80)}")
    if st.st_size != size or want.get("bytes") != size:
        raise Damaged(f"{file} is {st.st_size:,} bytes, {size:,} expected")
    return shape


def open_array(path: str, shape: tuple[int, ...] | None = None, dtype: np.dtype | str | None = None) -> np.ndarray:
    """The ``.npy`` file at ``path`` memory-mapped read-only (never unpickled), after its header was checked
    against the limits, its file size, and ``shape`` / ``dtype`` when given (a DataLoader worker reopening a
    checked entry); :class:`UnetguiError` otherwise."""
    name = os.path.basename(path)
    try:
        found, kind, size = _header(path, name)
        if os.path.getsize(path) != size or (shape is not None and found != tuple(shape)) or (
                dtype is not None and kind != np.dtype(dtype)):
            raise Damaged(f"{name} changed since it was checked")
    except (Damaged, OSError) as exc:
        raise UnetguiError(f"cache file {printable(path)}: {exc}; run again to rebuild it") from exc
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _open(folder: str, name: str) -> np.ndarray:
    return open_array(os.path.join(folder, f"{name}.npy"))


def _save_array(folder: str, name: str, array: np.ndarray) -> None:
    np.save(os.path.join(folder, f"{name}.npy"), array, allow_pickle=False)


def _remove(path: str) -> None:
    """Remove a damaged entry: a link (never what it points to), a file or anything else, or a folder."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


def _reuse(folder: str, key: str, check: Callable[[str, dict], None]) -> tuple[dict | None, str]:
    """(the meta of the valid entry at ``folder``, "") or (None, why it is damaged; "" when there is none)."""
    if not os.path.lexists(folder):
        return None, ""
    try:
        if os.path.islink(folder) or not os.path.isdir(folder):
            raise Damaged("it is a link or a file, not a folder")
        meta = _read_meta(folder, key)
        check(folder, meta)
        return meta, ""
    except Damaged as exc:
        return None, str(exc)


def _entry(folder: str, key: str, write: Callable[[str], dict], check: Callable[[str, dict], None],
           arrays: tuple[str, ...], notes: list[str] | None = None) -> tuple[dict, bool]:
    """The meta of the complete, valid entry at ``folder`` (key ``key``; ``check(folder, meta)`` raises
    :class:`Damaged`), building it first when it is missing or damaged: ``write(tmp)`` fills a private temporary
    folder and returns the meta, to which the key and the ``arrays``' shapes, dtypes and sizes are added, and the
    folder is renamed into place, so that a reader (another run, another rank) sees a whole entry or none. When
    another writer got there first, its entry is used. A damaged entry adds a note to ``notes``.
    Returns (meta, written now)."""
    meta, damage = _reuse(folder, key, check)
    if meta is not None:
        return meta, False
    tmp = f"{folder}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    os.makedirs(tmp)
    try:
        meta = {"format": FORMAT, "key": key, **write(tmp)}
        meta["arrays"] = {name: _array_info(tmp, name) for name in arrays}
        atomic.write_bytes(os.path.join(tmp, "meta.json"), json.dumps(meta).encode())
        if os.path.lexists(folder) and _reuse(folder, key, check)[0] is None:
            _remove(folder)  # damaged, of an older version, or left by a killed run
        try:
            os.rename(tmp, folder)
        except OSError:
            other = _reuse(folder, key, check)[0]
            if other is None:
                raise
            return other, False  # another writer renamed its entry first
        if damage and notes is not None:
            where = os.path.join(os.path.basename(os.path.dirname(folder)), os.path.basename(folder))
            notes.append(f"cache entry {printable(where)} was damaged ({damage}): rebuilt")
        return meta, True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _native_arrays(folder: str, voxels: np.ndarray, labels: np.ndarray | None) -> None:
    integer = voxels.dtype.kind in "iu" and voxels.size and voxels.min() >= -32768 and voxels.max() <= 32767
    _save_array(folder, "image", voxels.astype(np.int16 if integer else np.float32, copy=False))
    if labels is not None:
        _save_array(folder, "labels", labels.astype(np.uint8, copy=False))


def _check_grid(meta: dict) -> None:
    """The modality and the spacing of a native or image entry."""
    spacing = meta.get("spacing_yx")
    if not isinstance(meta.get("modality"), str) or not (
            isinstance(spacing, list) and len(spacing) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in spacing)):
        raise Damaged("meta.json has no valid modality and spacing")


def _check_native(folder: str, meta: dict) -> None:
    _check_grid(meta)
    values = meta.get("values")
    if not isinstance(values, list) or not all(type(v) is int and 1 <= v <= MAX_LABEL for v in values):
        raise Damaged("meta.json has no valid label values")
    if _check_array(folder, "image", meta, _IMAGE_DTYPES) != _check_array(folder, "labels", meta, _LABEL_DTYPES):
        raise Damaged("image.npy and labels.npy differ in shape")


def _check_image(folder: str, meta: dict) -> None:
    _check_grid(meta)
    _check_array(folder, "image", meta, _IMAGE_DTYPES)


def native(root: str, case_id: str, paths: list[str],
           load: Callable[[], tuple[np.ndarray, np.ndarray, str, tuple[float, float]]], recipe: str = "",
           notes: list[str] | None = None) -> tuple[NativeEntry, bool]:
    """The native entry of a case (``load()`` gives voxels, labels, modality, spacing when it must be
    written); and whether it was written now (False: reused). ``recipe``: how ``load`` makes the entry from
    the files beyond reading them (e.g. a label value mapped to 255), part of the key. ``notes``: a damaged
    entry, rebuilt, is noted there."""
    key = source_key(paths, recipe)
    folder = os.path.join(_subfolder(root, "native"), f"{_safe(case_id)}-{key}")

    def write(tmp: str) -> dict:
        voxels, labels, modality, spacing = load()
        if voxels.shape != labels.shape:
            raise UnetguiError(f"case {case_id}: image {voxels.shape} and labels {labels.shape} differ in shape")
        _native_arrays(tmp, voxels, labels)
        present = np.flatnonzero(np.bincount(labels.reshape(-1), minlength=256)) if labels.size else []
        return {"case": case_id, "modality": modality, "spacing_yx": [float(v) for v in spacing],
                "values": [int(v) for v in present if 0 < v < UNANNOTATED]}

    meta, written = _entry(folder, key, write, _check_native, ("image", "labels"), notes)
    return NativeEntry(case_id, folder, _open(folder, "image"), _open(folder, "labels"), str(meta["modality"]),
                       tuple(meta["spacing_yx"]), tuple(meta.get("values", ()))), written  # type: ignore[arg-type]


def native_folder(voxels: np.ndarray) -> str | None:
    """The native entry (or app image entry) a memory-mapped image comes from, else None."""
    name = getattr(voxels, "filename", None)
    return os.path.dirname(name) if name and os.path.basename(name) == "image.npy" else None


def native_image(root: str, case_id: str, paths: list[str],
                 load: Callable[[], tuple[np.ndarray, str, tuple[float, float]]],
                 notes: list[str] | None = None) -> tuple[np.ndarray, str, tuple[float, float], bool]:
    """An image alone on its own grid, memory-mapped (the app's series: their labels stay in memory);
    ``load()`` gives voxels, modality and spacing when it must be written. (voxels, modality, spacing, written)."""
    key = source_key(paths)
    folder = os.path.join(_subfolder(root, "images"), f"{_safe(case_id)}-{key}")

    def write(tmp: str) -> dict:
        voxels, modality, spacing = load()
        _native_arrays(tmp, voxels, None)
        return {"case": case_id, "modality": modality, "spacing_yx": [float(v) for v in spacing]}

    meta, written = _entry(folder, key, write, _check_image, ("image",), notes)
    return _open(folder, "image"), str(meta["modality"]), tuple(meta["spacing_yx"]), written  # type: ignore[return-value]


def preprocessed_image(root: str, voxels: np.ndarray, pre: Preprocessing,
                       notes: list[str] | None = None) -> tuple[np.ndarray, bool]:
    """The normalised image at the working size of a memory-mapped native image, memory-mapped; written once."""
    name = os.path.basename(_native(voxels))
    folder = os.path.join(_subfolder(root, f"prep-{_prep_key(pre)}"), name)

    def write(tmp: str) -> dict:
        _write_image(tmp, voxels, pre)
        return {"image_only": True, "shape": [voxels.shape[0], *pre.working_shape(voxels.shape[1:])]}

    _, written = _entry(folder, f"{_prep_key(pre)}/{name}", write, _check_prepared, ("image",), notes)
    release(voxels)
    return _open(folder, "image"), written


def prune(root: str, pre: Preprocessing) -> None:
    """Remove the preprocessed entries of other preprocessings (a project's CT statistics change as the user
    reviews slices, so its cache would keep a float32 copy of every series per training otherwise)."""
    keep = f"prep-{_prep_key(pre)}"
    for name in os.listdir(root) if os.path.isdir(root) else []:
        if name.startswith("prep-") and name != keep:
            path = os.path.join(root, name)
            if os.path.islink(path):
                os.unlink(path)  # the link, never what it points to
            else:
                shutil.rmtree(path, ignore_errors=True)


def check_prepared(root: str, natives: list[str]) -> list[str]:
    """Check the preprocessed entries (of every preprocessing in ``root``) made from the native entry folders
    ``natives``; remove the damaged ones, which are rebuilt when used, and return a note for each. Run before
    training, so that the notes reach the user with the readers' (the preprocessing is chosen later)."""
    notes = []
    for prep in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        base = os.path.join(root, prep)
        if not prep.startswith("prep-") or os.path.islink(base) or not os.path.isdir(base):
            continue
        for name in map(os.path.basename, natives):
            folder = os.path.join(base, name)
            meta, damage = _reuse(folder, f"{prep[5:]}/{name}", _check_prepared)
            if damage:
                _remove(folder)
                notes.append(f"cache entry {printable(os.path.join(prep, name))} was damaged ({damage}): rebuilt")
    return notes


def _native(voxels: np.ndarray) -> str:
    folder = native_folder(voxels)
    if folder is None:
        raise UnetguiError("the image is not memory-mapped from the cache")
    return folder


def _prep_key(pre: Preprocessing) -> str:
    return hashlib.sha256(json.dumps([FORMAT, pre.to_json()], sort_keys=True).encode()).hexdigest()[:16]


def _write_image(folder: str, voxels: np.ndarray, pre: Preprocessing) -> None:
    z = voxels.shape[0]
    target = pre.working_shape(voxels.shape[1:])
    stats = pre.volume_stats(voxels)
    image = np.lib.format.open_memmap(os.path.join(folder, "image.npy"), "w+", np.float32, (z, *target))
    for start in range(0, z, _CHUNK):  # a chunk of slices in memory at a time
        stop = min(z, start + _CHUNK)
        image[start:stop] = resize_slices(pre.normalize(np.asarray(voxels[start:stop]), stats), target)
    image.flush()
    del image


def _check_prepared(folder: str, meta: dict) -> None:
    """A preprocessed entry: its arrays, the annotated slices and (unless image only) the foreground index."""
    shape = meta.get("shape")
    if _check_array(folder, "image", meta, ("<f4",)) != tuple(shape if isinstance(shape, list) else ()):
        raise Damaged("image.npy does not have the entry's shape")
    if meta.get("image_only") is True:
        return
    if _check_array(folder, "labels", meta, _LABEL_DTYPES) != tuple(shape):
        raise Damaged("labels.npy does not have the entry's shape")
    annotated = meta.get("annotated")
    if not isinstance(annotated, list) or not all(type(z) is int and 0 <= z < shape[0] for z in annotated) or \
            any(a >= b for a, b in zip(annotated, annotated[1:])):
        raise Damaged("meta.json has no valid list of annotated slices")
    _read_foreground(folder, meta, tuple(shape))


def _read_foreground(folder: str, meta: dict, shape: tuple[int, ...]) -> dict[int, np.ndarray]:
    """The foreground index ``{label value: (n, 3) int32 locations (z, y, x)}``, each array's header checked
    before it is read and every location inside ``shape``; :class:`Damaged` otherwise."""
    path = os.path.join(folder, "foreground.npz")
    st = _regular(path, "foreground.npz")
    if st.st_size != (meta.get("foreground") or {}).get("bytes") or st.st_size > MAX_LABEL * (MAX_FOREGROUND * 12 + 4096):
        raise Damaged(f"foreground.npz is {st.st_size:,} bytes, its entry says otherwise")
    found = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_LABEL:
                raise Damaged("foreground.npz has too many arrays")
            for info in members:
                value = info.filename[1:-4]
                if not (info.filename.startswith("v") and info.filename.endswith(".npy") and value.isdigit()
                        and len(value) <= 3 and 1 <= int(value) <= MAX_LABEL):
                    raise Damaged(f"foreground.npz has an unknown array {printable(info.filename, 40)}")
                with archive.open(info) as f:
                    dims, fortran, dtype = _read_header(f)
                    if fortran or dtype != np.int32 or len(dims) != 2 or dims[1] != 3 or not 0 <= dims[0] <= MAX_FOREGROUND:
                        raise Damaged(f"foreground.npz: {info.filename} is {dtype} {dims}, not up to "
                                      f"{MAX_FOREGROUND:,} x 3 int32 locations")
                    places = np.frombuffer(f.read(dims[0] * 12), np.int32)
                if places.size != dims[0] * 3:
                    raise Damaged(f"foreground.npz: {info.filename} is cut short")
                places = places.reshape(dims)
                if places.size and ((places < 0).any() or (places >= np.asarray(shape, np.int64)).any()):
                    raise Damaged(f"foreground.npz: {info.filename} has locations outside the labels")
                found[int(value)] = places
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, SyntaxError,
            TypeError) as exc:  # zipfile: a flipped bit can claim an unknown zip version or compression
        raise Damaged(f"foreground.npz is not readable ({printable(exc, 80)})") from exc
    return found


def preprocessed(root: str, entry: NativeEntry, pre: Preprocessing,
                 notes: list[str] | None = None) -> tuple[Case, bool]:
    """The case normalised at the working size, with its foreground index (see the module docstring); and
    whether it was written now. ``notes``: a damaged entry, rebuilt, is noted there."""
    name = os.path.basename(entry.folder)  # the native entry: its source
    folder = os.path.join(_subfolder(root, f"prep-{_prep_key(pre)}"), name)
    meta, written = _entry(folder, f"{_prep_key(pre)}/{name}", lambda tmp: _write_preprocessed(tmp, entry, pre),
                           _check_prepared, ("image", "labels"), notes)
    release(entry.voxels, entry.labels)
    try:
        foreground = _read_foreground(folder, meta, tuple(meta["shape"]))
    except Damaged as exc:  # changed since it was checked a moment ago
        raise UnetguiError(f"cache entry {printable(folder)}: {exc}; run again to rebuild it") from exc
    case = Case(entry.case_id, _open(folder, "image"), _open(folder, "labels"), tuple(meta["annotated"]), foreground)
    return case, written


def _write_preprocessed(folder: str, entry: NativeEntry, pre: Preprocessing) -> dict:
    z = entry.voxels.shape[0]
    target = pre.working_shape(entry.voxels.shape[1:])
    _write_image(folder, entry.voxels, pre)
    labels = np.lib.format.open_memmap(os.path.join(folder, "labels.npy"), "w+", np.uint8, (z, *target))
    annotated: list[int] = []
    counts: dict[int, int] = {}
    for start in range(0, z, _CHUNK):
        stop = min(z, start + _CHUNK)
        lab = resize_slices(np.asarray(entry.labels[start:stop]), target, nearest=True)
        labels[start:stop] = lab
        annotated += [start + int(k) for k in np.flatnonzero((lab != UNANNOTATED).any(axis=(1, 2)))]
        values, n = np.unique(lab, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist()):
            counts[v] = counts.get(v, 0) + c
    labels.flush()
    del labels
    rng = np.random.default_rng(0)
    foreground = {}
    for value, total in counts.items():
        if value in (0, UNANNOTATED):
            continue
        keep = rng.random(total) < min(1.0, FOREGROUND_SAMPLES / total)  # a uniform sample, in one pass
        picked, seen = [], 0
        labels = _open(folder, "labels")
        for start in range(0, z, _CHUNK):
            where = np.argwhere(labels[start:start + _CHUNK] == value)
            chosen = where[keep[seen:seen + len(where)]]
            seen += len(where)
            chosen[:, 0] += start
            picked.append(chosen.astype(np.int32))
        foreground[f"v{value}"] = np.concatenate(picked) if picked else np.zeros((0, 3), np.int32)
        del labels  # unmapped before the folder is renamed (Windows refuses to rename mapped files)
    np.savez(os.path.join(folder, "foreground.npz"), **foreground)
    return {"case": entry.case_id, "annotated": annotated, "shape": [z, *target], "preprocessing": pre.to_json(),
            "foreground": {"bytes": os.path.getsize(os.path.join(folder, "foreground.npz"))}}
