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

``meta.json`` is written last in each entry: an entry without it (a run killed while writing) is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from unetgui.core import atomic
from unetgui.core.errors import UnetguiError
from unetgui.core.memory import release
from unetgui.core.volume import UNANNOTATED
from unetgui.engine.data import Case
from unetgui.engine.preprocessing import Preprocessing, resize_slices

FORMAT = 1
FOREGROUND_SAMPLES = 10_000
_CHUNK = 16  # slices normalised and resized at a time


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


def source_key(paths: list[str]) -> str:
    """A hash of the files at ``paths`` (folders: every file inside): path, size, modification time."""
    digest = hashlib.sha256(str(FORMAT).encode())
    for path in paths:
        files = [path] if os.path.isfile(path) else sorted(
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)
        for file in files:
            st = os.stat(file)
            digest.update(f"{os.path.abspath(file)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _safe(case_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in case_id)[:80] or "case"


def _load_meta(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None
    except (OSError, ValueError):
        return None


def _save_array(folder: str, name: str, array: np.ndarray) -> None:
    np.save(os.path.join(folder, f"{name}.npy"), array, allow_pickle=False)


def _entry(folder: str, write: Callable[[str], dict]) -> tuple[dict, bool]:
    """The meta of the complete entry at ``folder``, building it first when it is missing: ``write(tmp)``
    fills a private temporary folder and returns the meta, and the folder is renamed into place, so that
    a reader (another run, another rank) sees a whole entry or none. When another writer got there first,
    its entry is used. Returns (meta, written now)."""
    meta = _load_meta(folder)
    if meta is not None:
        return meta, False
    tmp = f"{folder}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    os.makedirs(tmp)
    try:
        meta = {"format": FORMAT, **write(tmp)}
        atomic.write_bytes(os.path.join(tmp, "meta.json"), json.dumps(meta).encode())
        if os.path.isdir(folder) and _load_meta(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)  # a half-written entry of an older version or a killed run
        try:
            os.rename(tmp, folder)
        except OSError:
            if _load_meta(folder) is None:
                raise
            return _load_meta(folder), False  # another writer renamed its entry first
        return meta, True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _native_arrays(folder: str, voxels: np.ndarray, labels: np.ndarray | None) -> None:
    integer = voxels.dtype.kind in "iu" and voxels.size and voxels.min() >= -32768 and voxels.max() <= 32767
    _save_array(folder, "image", voxels.astype(np.int16 if integer else np.float32, copy=False))
    if labels is not None:
        _save_array(folder, "labels", labels.astype(np.uint8, copy=False))


def _open(folder: str, name: str) -> np.ndarray:
    return np.load(os.path.join(folder, f"{name}.npy"), mmap_mode="r", allow_pickle=False)


def native(root: str, case_id: str, paths: list[str],
           load: Callable[[], tuple[np.ndarray, np.ndarray, str, tuple[float, float]]]) -> tuple[NativeEntry, bool]:
    """The native entry of a case (``load()`` gives voxels, labels, modality, spacing when it must be
    written); and whether it was written now (False: reused)."""
    folder = os.path.join(root, "native", f"{_safe(case_id)}-{source_key(paths)}")

    def write(tmp: str) -> dict:
        voxels, labels, modality, spacing = load()
        if voxels.shape != labels.shape:
            raise UnetguiError(f"case {case_id}: image {voxels.shape} and labels {labels.shape} differ in shape")
        _native_arrays(tmp, voxels, labels)
        present = np.flatnonzero(np.bincount(labels.reshape(-1), minlength=256)) if labels.size else []
        return {"case": case_id, "modality": modality, "spacing_yx": list(spacing),
                "values": [int(v) for v in present if 0 < v < UNANNOTATED]}

    meta, written = _entry(folder, write)
    return NativeEntry(case_id, folder, _open(folder, "image"), _open(folder, "labels"), str(meta["modality"]),
                       tuple(meta["spacing_yx"]), tuple(meta.get("values", ()))), written  # type: ignore[arg-type]


def native_folder(voxels: np.ndarray) -> str | None:
    """The native entry (or app image entry) a memory-mapped image comes from, else None."""
    name = getattr(voxels, "filename", None)
    return os.path.dirname(name) if name and os.path.basename(name) == "image.npy" else None


def native_image(root: str, case_id: str, paths: list[str],
                 load: Callable[[], tuple[np.ndarray, str, tuple[float, float]]]) -> tuple[np.ndarray, str, tuple[float, float], bool]:
    """An image alone on its own grid, memory-mapped (the app's series: their labels stay in memory);
    ``load()`` gives voxels, modality and spacing when it must be written. (voxels, modality, spacing, written)."""
    folder = os.path.join(root, "images", f"{_safe(case_id)}-{source_key(paths)}")

    def write(tmp: str) -> dict:
        voxels, modality, spacing = load()
        _native_arrays(tmp, voxels, None)
        return {"case": case_id, "modality": modality, "spacing_yx": list(spacing)}

    meta, written = _entry(folder, write)
    return _open(folder, "image"), str(meta["modality"]), tuple(meta["spacing_yx"]), written  # type: ignore[return-value]


def preprocessed_image(root: str, voxels: np.ndarray, pre: Preprocessing) -> tuple[np.ndarray, bool]:
    """The normalised image at the working size of a memory-mapped native image, memory-mapped; written once."""
    folder = os.path.join(root, f"prep-{_prep_key(pre)}", os.path.basename(_native(voxels)))
    os.makedirs(os.path.dirname(folder), exist_ok=True)

    def write(tmp: str) -> dict:
        _write_image(tmp, voxels, pre)
        return {"image_only": True}

    _, written = _entry(folder, write)
    release(voxels)
    return _open(folder, "image"), written


def prune(root: str, pre: Preprocessing) -> None:
    """Remove the preprocessed entries of other preprocessings (a project's CT statistics change as the user
    reviews slices, so its cache would keep a float32 copy of every series per training otherwise)."""
    keep = f"prep-{_prep_key(pre)}"
    for name in os.listdir(root) if os.path.isdir(root) else []:
        if name.startswith("prep-") and name != keep:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


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


def preprocessed(root: str, entry: NativeEntry, pre: Preprocessing) -> tuple[Case, bool]:
    """The case normalised at the working size, with its foreground index (see the module docstring); and
    whether it was written now."""
    folder = os.path.join(root, f"prep-{_prep_key(pre)}", os.path.basename(entry.folder))  # the native entry: its source
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    meta, written = _entry(folder, lambda tmp: _write_preprocessed(tmp, entry, pre))
    release(entry.voxels, entry.labels)
    fg = np.load(os.path.join(folder, "foreground.npz"), allow_pickle=False)
    foreground = {int(k[1:]): fg[k] for k in fg.files}
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
    return {"case": entry.case_id, "annotated": annotated, "shape": [z, *target], "preprocessing": pre.to_json()}
