"""NIfTI (.nii, .nii.gz): image volumes, and label volumes mapped voxel-exactly onto an image grid.

A label volume made by another tool from the same DICOM (ITK-SNAP, Slicer, dcm2niix, nnU-Net) often
stores the same grid with permuted or flipped axes; :func:`read_labels` maps it onto the image exactly
by axis permutation and flips, using the affines. Any other difference (spacing, shift, rotation,
extent) raises :class:`~unetgui.core.errors.GeometryError`: unetgui never resamples labels silently.
The label names come from a table next to the file when there is one (ITK-SNAP, Slicer, nnU-Net's
``dataset.json``: :mod:`unetgui.formats.label_tables`). The checks and the mapping onto the image grid are
shared with the NRRD reader (:func:`label_values`, :func:`onto_grid`, :func:`name_labels`).
"""

from __future__ import annotations

import math
import os

import nibabel as nib
import numpy as np

from unetgui.core import atomic, limits
from unetgui.core.errors import FormatError, GeometryError
from unetgui.core.geometry import index_transform
from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable, Volume, default_color
from unetgui.formats import label_tables

_SCANNER_ANAT = 1  # NIfTI xform code: coordinates of the scanner (DICOM patient) frame


def _load(path: str) -> nib.Nifti1Image:
    """The image with its header checked (size limits); no voxel is read yet."""
    limits.check_regular_file(path)
    try:
        img = nib.load(path)
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except Exception as exc:
        raise FormatError(f"{os.path.basename(path)}: not a readable NIfTI file ({exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise FormatError(f"{os.path.basename(path)}: not a NIfTI image ({type(img).__name__})")
    try:  # bytes in memory: the stored type, at least float32 once scaled (a float64 volume counts 8 per voxel)
        itemsize = max(img.header.get_data_dtype().itemsize, 4)
    except Exception:  # noqa: BLE001 - an unknown datatype code: nibabel refuses it on read, with its own message
        itemsize = None
    limits.check_shape(tuple(reversed(img.header.get_data_shape())), os.path.basename(path), itemsize=itemsize)
    return img


def _check_bytes(img: nib.Nifti1Image, name: str) -> None:
    """Refuse a header that claims more voxel bytes than its file can hold, before nibabel allocates them."""
    path = img.get_filename()
    if not path or not os.path.isfile(path):
        return
    need = math.prod(img.header.get_data_shape()) * img.header.get_data_dtype().itemsize
    size = os.path.getsize(path)
    if need > size * (limits.GZIP_RATIO if path.endswith(".gz") else 1):
        raise FormatError(f"{name}: the header claims {need:,} bytes of voxels, more than a file of {size:,} "
                          "bytes can hold (truncated or damaged)")


def describe(path: str) -> str:
    """One line from the header alone (``unetgui info``): size, spacing, data type, orientation codes."""
    img = _load(path)
    shape = img.header.get_data_shape()
    zooms = img.header.get_zooms()
    size = " x ".join(str(n) for n in shape)
    spacing = " x ".join(f"{z:.4g}" for z in zooms[:3])
    codes = f"qform code {int(img.header['qform_code'])}, sform code {int(img.header['sform_code'])}"
    return f"NIfTI {path}: {size} voxels of {spacing} mm, {img.header.get_data_dtype()}, {codes}"


def _data_xyz(img: nib.Nifti1Image, warnings: list[str]) -> np.ndarray:
    """The voxel array indexed (x, y, z), in float32 only when the header scales it."""
    name = os.path.basename(img.get_filename() or "image")
    _check_bytes(img, name)
    try:
        raw = np.asanyarray(img.dataobj.get_unscaled())
    except Exception as exc:
        raise FormatError(f"{name}: the voxel data cannot be read ({exc})") from exc
    if raw.dtype.names:  # RGB / RGBA
        rgb = np.stack([raw[c].astype(np.float32) for c in ("R", "G", "B")], axis=-1)
        raw = rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)
        warnings.append("colour NIfTI converted to grayscale luminance")
    while raw.ndim > 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim == 2:
        raw = raw[:, :, None]
    if raw.ndim == 4:
        warnings.append(f"4-D NIfTI with {raw.shape[3]} volumes: the first volume was loaded")
        raw = raw[..., 0]
    if raw.ndim != 3:
        raise FormatError(f"{name}: {raw.ndim}-D data is not supported (expected a 3-D volume)")
    slope, inter = img.dataobj.slope, img.dataobj.inter
    if (slope, inter) != (1.0, 0.0) and np.isfinite(slope) and np.isfinite(inter) and slope != 0:
        raw = raw.astype(np.float32) * np.float32(slope) + np.float32(inter)
    return raw


def read_image(path: str, modality: str = "") -> Volume:
    """A NIfTI image as a :class:`Volume` (voxels ``(z, y, x)``, the file's affine, integer dtypes kept)."""
    img = _load(path)
    warnings: list[str] = []
    data = _data_xyz(img, warnings)
    affine = img.affine.copy()
    if img.header.get("sform_code", 0) == 0 and img.header.get("qform_code", 0) == 0:
        warnings.append("the NIfTI header has no orientation (qform/sform code 0): the geometry is assumed")
    if not _regular(affine):
        warnings.append("the NIfTI affine is degenerate: 1 mm voxels without orientation are assumed")
        affine = np.diag([*(img.header.get_zooms()[:3] if all(z > 0 for z in img.header.get_zooms()[:3]) else (1, 1, 1)), 1.0])
    voxels = np.ascontiguousarray(data.transpose(2, 1, 0))
    if not modality and looks_like_hu(voxels):
        modality = "CT"  # NIfTI has no modality field
        warnings.append("no modality in NIfTI: treated as CT because the values look like Hounsfield units")
    return Volume(voxels, affine, modality, tuple(warnings))


def looks_like_hu(voxels: np.ndarray) -> bool:
    """True when values look like Hounsfield units (air at about -1000): how a file without a modality
    field (NIfTI, NRRD) is told to be CT."""
    return bool(voxels.size and voxels.min() <= -900 and voxels.max() <= 4000)


def _regular(affine: np.ndarray) -> bool:
    return bool(np.isfinite(affine).all() and abs(np.linalg.det(affine[:3, :3])) > 1e-9)


def read_labels(path: str, reference: Volume | None = None, table: LabelTable | None = None) -> LabelMap:
    """A NIfTI label volume, mapped onto ``reference``'s grid when given (see :func:`read_labels_noted`)."""
    return read_labels_noted(path, reference, table)[0]


def read_labels_noted(path: str, reference: Volume | None = None,
                      table: LabelTable | None = None) -> tuple[LabelMap, tuple[str, ...]]:
    """A NIfTI label volume and notes for the user.

    Values must be integers 0..255 (255 = not annotated); a volume of only {0, 255} is a binary mask and
    reads as {0, 1} (with a note). Names and colours: ``table`` where it defines a value, else a table found
    next to the file (:func:`~unetgui.formats.label_tables.find_table`), else "Label N". Raises
    :class:`GeometryError` when the grid differs from the reference by more than axis permutations and flips.
    """
    img = _load(path)
    name = os.path.basename(path)
    if len(img.shape) > 3 and any(n > 1 for n in img.shape[3:]):
        raise FormatError(f"{name}: a label volume must be 3-D, this one is {img.shape} (one label value per voxel, "
                          "not one channel per label)")
    data, notes = label_values(_data_xyz(img, []), name, sparse=is_annotation(img))
    labels, affine = onto_grid(data, img.affine.copy(), name, reference)
    found, found_notes = label_tables.find_table(path)
    return LabelMap(labels, affine, name_labels(labels, table, found)), notes + found_notes


def is_annotation(img) -> bool:
    """The file is an annotation written by unetgui (:func:`write_labels` with ``annotation``): its 255 means
    "not annotated", even when its only other value is 0 (background strokes alone)."""
    try:
        return bytes(img.header["descrip"].item()).startswith(ANNOTATION_DESCRIPTION)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def label_values(data: np.ndarray, name: str, sparse: bool = False) -> tuple[np.ndarray, tuple[str, ...]]:
    """Label values of any numeric array as uint8, checked: whole numbers 0..255. Only {0, 255} (with 255
    present) is a binary mask and becomes {0, 1}, as for PNG masks (the note says so), unless the file is
    ``sparse``: an annotation whose 255 means "not annotated"."""
    if data.dtype.kind == "f" and not np.array_equal(data, np.round(data)):
        raise FormatError(f"{name}: label values must be whole numbers (this looks like an image or "
                          "probabilities, not a label volume)")
    if data.dtype.kind not in "biuf":
        raise FormatError(f"{name}: label values must be numbers, not {data.dtype}")
    if data.size and (data.min() < 0 or data.max() > UNANNOTATED):
        raise FormatError(f"{name}: label values must lie in 0..255, found {data.min()}..{data.max()}")
    data = data.astype(np.uint8)
    present = np.flatnonzero(np.bincount(data.ravel(), minlength=256))
    if not sparse and present.size and set(present.tolist()) <= {0, UNANNOTATED} and present[-1] == UNANNOTATED:
        return (data == UNANNOTATED).astype(np.uint8), (f"{name}: values {{0, 255}}: read as a binary mask "
                                                          "(255 = label 1)",)
    return data, ()


def onto_grid(data_xyz: np.ndarray, affine: np.ndarray, name: str, reference: Volume | None,
              embed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels indexed (x, y, z) with their RAS ``affine`` as ``(z, y, x)`` on ``reference``'s grid, and that grid's
    affine (the file's own grid without a reference).

    Only axis permutations and flips are allowed; with ``embed`` the labels may also cover an axis-aligned
    sub-box of the reference (same spacing and directions, whole-voxel offset: a cropped 3D Slicer
    segmentation), and background fills the rest. Anything else raises :class:`GeometryError`.
    """
    if reference is None:
        return np.ascontiguousarray(data_xyz.transpose(2, 1, 0)), affine
    ref_shape_xyz = reference.shape[::-1]
    mapping = index_transform(affine, data_xyz.shape, reference.affine, ref_shape_xyz)
    offset = (0, 0, 0)
    if mapping is None and embed:
        mapping, offset = _sub_box(affine, data_xyz.shape, reference.affine, ref_shape_xyz)
    if mapping is None:
        raise GeometryError(_grid_mismatch(name, data_xyz.shape, affine, ref_shape_xyz, reference.affine))
    order, flips = mapping
    data = data_xyz.transpose(order)
    data = np.flip(data, axis=[a for a in range(3) if flips[a]]) if any(flips) else data
    if data.shape != tuple(ref_shape_xyz):
        full = np.zeros(ref_shape_xyz, data.dtype)
        full[tuple(slice(o, o + n) for o, n in zip(offset, data.shape))] = data
        data = full
    return np.ascontiguousarray(data.transpose(2, 1, 0)), reference.affine.copy()


def _sub_box(affine: np.ndarray, shape_xyz: tuple[int, ...], ref_affine: np.ndarray, ref_shape_xyz: tuple[int, ...],
             tolerance: float = 0.05):
    """``((order, flips), offset)`` placing a grid inside the reference by permutation, flips and a whole-voxel
    offset (in reference voxels, x y z), or ``(None, None)``."""
    try:
        t = np.linalg.solve(np.asarray(ref_affine, float), np.asarray(affine, float))
    except np.linalg.LinAlgError:
        return None, None
    perm = np.rint(t[:3, :3])
    if (np.abs(t[:3, :3] - perm) @ (np.asarray(shape_xyz, float) - 1.0)).max() > tolerance:
        return None, None
    if not (np.abs(perm).sum(axis=0) == 1).all() or not (np.abs(perm).sum(axis=1) == 1).all():
        return None, None
    order, flips, offset = [0, 0, 0], [False, False, False], [0, 0, 0]
    for axis in range(3):
        src = int(np.flatnonzero(perm[axis])[0])
        order[axis], flips[axis] = src, bool(perm[axis, src] < 0)
        low = t[axis, 3] - (shape_xyz[src] - 1 if flips[axis] else 0)  # reference index of the box's first voxel
        if abs(low - round(low)) > tolerance or round(low) < 0 or round(low) + shape_xyz[src] > ref_shape_xyz[axis]:
            return None, None
        offset[axis] = int(round(low))
    return (tuple(order), tuple(flips)), tuple(offset)


def name_labels(labels: np.ndarray, table: LabelTable | None, found: LabelTable | None = None) -> LabelTable:
    """``table`` (kept whole), plus a label for each other value present in ``labels`` (0 and 255 aside): its
    entry in ``found`` (a table found next to the file), else "Label N" in a default colour."""
    out = table or LabelTable()
    for v in np.flatnonzero(np.bincount(labels.ravel(), minlength=256)):
        if 0 < v < UNANNOTATED and out.get(int(v)) is None:
            v = int(v)
            out = out.with_label((found.get(v) if found else None) or Label(v, f"Label {v}", default_color(v)))
    return out


def _grid_mismatch(name: str, shape, affine, ref_shape, ref_affine) -> str:
    def describe(s, a):
        sp = np.linalg.norm(a[:3, :3], axis=0)
        return (f"{s[0]} x {s[1]} x {s[2]} voxels of {sp[0]:.4g} x {sp[1]:.4g} x {sp[2]:.4g} mm, "
                f"origin ({a[0, 3]:.2f}, {a[1, 3]:.2f}, {a[2, 3]:.2f}) mm")
    return (f"{name}: the label grid does not match the image grid and unetgui does not resample labels.\n"
            f"  labels: {describe(shape, affine)}\n  image:  {describe(ref_shape, ref_affine)}\n"
            "Export the labels on the image's own grid (same series) and try again.")


def _image(data_xyz: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    if not _regular(affine):
        raise FormatError("cannot write NIfTI: the volume's affine is degenerate (no valid geometry)")
    img = nib.Nifti1Image(data_xyz, affine)
    img.header.set_sform(affine, code=_SCANNER_ANAT)
    img.header.set_qform(affine, code=_SCANNER_ANAT)  # nearest rigid form when the grid is sheared (tilt)
    img.header.set_xyzt_units("mm", "sec")
    return img


def write_image(volume: Volume, path: str) -> None:
    """Write ``volume`` with its affine (sform exact, qform its rigid part) and mm units."""
    _save(_image(volume.voxels.transpose(2, 1, 0), volume.affine), path)


#: the header description of an annotation file (255 = not annotated), read back by :func:`is_annotation`
ANNOTATION_DESCRIPTION = b"unetgui annotation: 255 = not annotated"


def write_labels(labels: LabelMap, path: str, annotation: bool = False) -> None:
    """Write a label volume (uint8) on its grid, with qform/sform, mm units and the label intent; an
    ``annotation`` (255 = not annotated) says so in the header's description, so that one holding only
    background strokes (0 and 255) is not read back as a binary mask."""
    img = _image(labels.labels.transpose(2, 1, 0), labels.affine)
    img.header.set_intent("label")
    if annotation:
        img.header["descrip"] = ANNOTATION_DESCRIPTION
    _save(img, path)


def _save(img: nib.Nifti1Image, path: str) -> None:
    try:
        atomic.write_with(path, lambda tmp: nib.save(img, tmp))  # the temporary name keeps the suffix
    except OSError as exc:
        raise FormatError(f"cannot write {path}: {exc}") from exc
