"""Folders of 2-D images and masks (PNG, TIFF, JPEG, BMP), and per-slice label PNG export.

Images: uint8 or uint16 grayscale (colour is converted to luminance). Masks: a mask whose only values
are {0, 255} is binary and reads as {0, 1}; any other mask is a label image 0..K (255 = not annotated).
Images and masks are paired by file stem (``12.tif`` <-> ``12.png``). File order is natural order
(``2.png`` before ``10.png``).
"""

from __future__ import annotations

import os
import re
import struct

import cv2
import numpy as np

from unetgui.core import limits
from unetgui.core.errors import FormatError
from unetgui.core.volume import UNANNOTATED, Volume

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: str) -> list[str]:
    """Image files directly in ``folder``, in natural order."""
    if not os.path.isdir(folder):
        raise FormatError(f"{folder}: not a folder")
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith(".")
             and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def _imread(path: str) -> np.ndarray:
    limits.check_regular_file(path)
    data = np.fromfile(path, np.uint8)  # not cv2.imread: it fails silently on non-ASCII paths on Windows
    name = os.path.basename(path)
    if data[:16].tobytes() == _PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR" and data.size >= 24:
        width, height = struct.unpack(">II", data[16:24].tobytes())  # checked before OpenCV allocates
        limits.check_shape((height, width), name)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:  # e.g. a TIFF or JPEG header beyond OpenCV's own pixel limit
        raise FormatError(f"{name}: not a readable image ({str(exc).strip().splitlines()[-1][:200]})") from None
    if image is None:
        raise FormatError(f"{name}: not a readable image")
    return image


def read_image(path: str) -> np.ndarray:
    """A 2-D grayscale image ``(y, x)``; uint8/uint16 kept, colour converted to luminance (uint8/uint16)."""
    image = _imread(path)
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[:, :, :3]
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.shape[2] == 3 else image[:, :, 0]
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        raise FormatError(f"{os.path.basename(path)}: unsupported pixel type {image.dtype}")
    return image


def read_mask(path: str, binary: bool | None = None) -> np.ndarray:
    """A 2-D label mask ``(y, x)`` uint8: {0, 255} -> {0, 1}; other values kept as labels (0..255).

    ``binary`` forces the reading (True: 255 is label 1; False: 255 is "not annotated"); ``None``
    decides from this file's values alone.
    """
    mask = _imread(path)
    name = os.path.basename(path)
    if mask.ndim == 3:
        channels = mask[:, :, :3]
        if not (np.array_equal(channels[:, :, 0], channels[:, :, 1]) and np.array_equal(channels[:, :, 0], channels[:, :, 2])):
            raise FormatError(f"{name}: colour masks are not supported; save masks as grayscale label images")
        mask = channels[:, :, 0]
    if mask.dtype.kind not in "iu" or (mask.size and (mask.min() < 0 or mask.max() > UNANNOTATED)):
        raise FormatError(f"{name}: mask values must be whole numbers 0..255, found {mask.dtype} "
                          f"{mask.min()}..{mask.max()}")
    mask = mask.astype(np.uint8)
    if binary is None:
        binary = bool(set(np.unique(mask).tolist()) <= {0, 255})
    return (mask == 255).astype(np.uint8) if binary else mask


def read_image_folder(folder: str) -> tuple[Volume, list[str]]:
    """All images of ``folder`` stacked as a volume ``(n, y, x)`` with 1 mm voxels, and their file names.

    Raises :class:`FormatError` if the folder holds no image or images of different sizes.
    """
    paths = list_images(folder)
    if not paths:
        raise FormatError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    images = [read_image(paths[0])]
    limits.check_shape((len(paths), *images[0].shape), folder)  # before reading the others
    for path in paths[1:]:
        images.append(read_image(path))
        if images[-1].shape != images[0].shape:  # at once: the rest are never read
            raise FormatError(f"{folder}: images differ in size ({os.path.basename(paths[0])} is {images[0].shape}, "
                              f"{os.path.basename(path)} is {images[-1].shape}); a stack needs one size")
    dtype = np.result_type(*[im.dtype for im in images])
    voxels = np.stack(images).astype(dtype, copy=False)
    return Volume(voxels, np.eye(4), "OT", ("2-D images: 1 mm pixels assumed",)), [os.path.basename(p) for p in paths]


def read_mask_folder(folder: str, image_names: list[str]) -> np.ndarray:
    """Masks for ``image_names`` (matched by file stem) stacked ``(n, y, x)`` uint8."""
    by_stem = {os.path.splitext(os.path.basename(p))[0]: p for p in list_images(folder)}
    stems = [os.path.splitext(n)[0] for n in image_names]
    missing = [s for s in stems if s not in by_stem]
    if missing:
        raise FormatError(f"{folder}: no mask for {len(missing)} image(s): {', '.join(missing[:5])}"
                          f"{' ...' if len(missing) > 5 else ''} (masks must have the images' file names)")
    masks = [read_mask(by_stem[s], binary=False) for s in stems]
    odd = next((s for s, m in zip(stems, masks) if m.shape != masks[0].shape), None)
    if odd is not None:
        raise FormatError(f"{folder}: masks differ in size ({stems[0]} and {odd}); one size per folder")
    # binary or not is decided for the whole folder, so 255 means the same thing on every slice
    values = set().union(*(np.unique(m).tolist() for m in masks))
    binary = values <= {0, 255} and 255 in values
    return np.stack([(m == 255).astype(np.uint8) for m in masks] if binary else masks)


def write_label_pngs(labels: np.ndarray, folder: str, prefix: str = "slice", names: list[str] | None = None) -> list[str]:
    """One 8-bit PNG per slice of ``labels`` ``(z, y, x)`` with the exact label values 0..K.

    Names are ``names`` (e.g. the input images' names) or ``{prefix}_{zzzz}.png`` (0-based slice index):
    no patient data in generated file names.
    """
    if labels.ndim != 3 or labels.dtype != np.uint8:
        raise ValueError("labels must be a uint8 (z, y, x) array")
    if names is not None and len(names) != labels.shape[0]:
        raise ValueError("one name per slice")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise FormatError(f"cannot create {folder}: {exc}") from exc
    digits = max(4, len(str(labels.shape[0] - 1)))
    paths = []
    for z in range(labels.shape[0]):
        path = os.path.join(folder, names[z] if names else f"{prefix}_{z:0{digits}d}.png")
        ok, encoded = cv2.imencode(".png", labels[z])
        if not ok:
            raise FormatError(f"cannot encode slice {z} as PNG")
        try:
            encoded.tofile(path)
        except OSError as exc:
            raise FormatError(f"cannot write {path}: {exc}") from exc
        paths.append(path)
    return paths
