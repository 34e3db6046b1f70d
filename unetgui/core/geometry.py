"""Voxel grid geometry: 4x4 affines in RAS millimetres.

Convention used everywhere in unetgui: a volume's voxels are stored as an array indexed ``(z, y, x)``
(slice, row, column) and its ``affine`` maps the *column vector* ``(x, y, z, 1)`` -- column index, row
index, slice index -- to RAS world coordinates in mm (the NIfTI/nibabel convention for the array
transposed to ``(x, y, z)``). DICOM works in LPS; :data:`LPS_TO_RAS` converts.
"""

from __future__ import annotations

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_from_dicom(
    row_dir: np.ndarray,
    col_dir: np.ndarray,
    pixel_spacing: tuple[float, float],
    first_position: np.ndarray,
    slice_step: np.ndarray,
) -> np.ndarray:
    """RAS affine of a DICOM stack.

    ``row_dir``/``col_dir``: the two direction cosines of ImageOrientationPatient (LPS; ``row_dir`` points
    along a row, i.e. towards increasing column index). ``pixel_spacing``: DICOM PixelSpacing
    ``(row spacing, column spacing)`` in mm. ``first_position``: ImagePositionPatient of slice 0 (LPS mm).
    ``slice_step``: LPS vector in mm from one slice to the next.
    """
    lps = np.eye(4)
    lps[:3, 0] = np.asarray(row_dir, float) * float(pixel_spacing[1])
    lps[:3, 1] = np.asarray(col_dir, float) * float(pixel_spacing[0])
    lps[:3, 2] = np.asarray(slice_step, float)
    lps[:3, 3] = np.asarray(first_position, float)
    return LPS_TO_RAS @ lps


#: the screen directions (RAS unit vectors) of each anatomical plane shown in radiological convention:
#: (down, right). Axial: anterior up, patient right on the left; coronal: head up, patient right on the
#: left; sagittal: head up, anterior on the left.
SCREEN = {"axial": ((0.0, -1.0, 0.0), (-1.0, 0.0, 0.0)), "coronal": ((0.0, 0.0, -1.0), (-1.0, 0.0, 0.0)),
          "sagittal": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0))}


def plane_names(affine: np.ndarray) -> tuple[str, str, str]:
    """The anatomical plane ("axial", "coronal", "sagittal") of the planes along array axis 0 (z), 1 (y) and 2
    (x): the plane across the world axis (S, A, R) that the array axis runs along most. A sagittal MR stack
    gives ("sagittal", ...), an axial CT ("axial", "coronal", "sagittal"). Each name is used once, the most
    aligned axis choosing first, so an oblique stack still gets three names."""
    steps = np.abs(np.asarray(affine, float)[:3, :3][:, ::-1])  # column k: world step of array axis k
    steps = steps / np.maximum(np.linalg.norm(steps, axis=0), 1e-12)
    names: dict[int, str] = {}
    world_free = {0: "sagittal", 1: "coronal", 2: "axial"}  # the plane across world axis R, A, S
    for k in sorted(range(3), key=lambda k: -steps[:, k].max()):
        w = max(world_free, key=lambda w: steps[w, k])
        names[k] = world_free.pop(w)
    return names[0], names[1], names[2]


def display_transform(affine: np.ndarray, axis: int) -> tuple[bool, bool, bool]:
    """How to show the plane along array ``axis`` in radiological convention (:data:`SCREEN`):
    (transpose, flip rows, flip columns) of its section ``(rows, columns)`` = the other two array axes in
    order, applied in that order. An axial CT needs no change; a RAS NIfTI both flips; the axial view of a
    sagittally acquired MR a transpose."""
    a = np.asarray(affine, float)[:3, :3]
    rows, cols = (k for k in range(3) if k != axis)
    vr, vc = a[:, 2 - rows], a[:, 2 - cols]  # world step of the section's row and column index
    down, right = (np.asarray(v) for v in SCREEN[plane_names(affine)[axis]])
    transpose = abs(vc @ down) + abs(vr @ right) > abs(vr @ down) + abs(vc @ right)
    if transpose:
        vr, vc = vc, vr
    return bool(transpose), bool(vr @ down < 0), bool(vc @ right < 0)


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing in mm in array order ``(z, y, x)``."""
    norms = np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)
    return float(norms[2]), float(norms[1]), float(norms[0])


def voxel_to_world(affine: np.ndarray, zyx: np.ndarray) -> np.ndarray:
    """World RAS mm of voxel indices given as ``(..., 3)`` in ``(z, y, x)`` order."""
    zyx = np.asarray(zyx, float)
    xyz = zyx[..., ::-1]
    return xyz @ np.asarray(affine, float)[:3, :3].T + np.asarray(affine, float)[:3, 3]


def index_transform(
    src_affine: np.ndarray, src_shape_xyz: tuple[int, ...], dst_affine: np.ndarray, dst_shape_xyz: tuple[int, ...],
    tolerance: float = 0.05,
) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]] | None:
    """How to reorder a ``src`` array (indexed x, y, z) so that it lies voxel-exactly on ``dst``.

    Returns ``(order, flips)`` such that ``np.flip(src.transpose(order), axes_where_flips)`` is
    indexed like ``dst``, or ``None`` if the grids differ by anything other than an axis permutation
    and flips (another spacing, a shift, a rotation, a different extent). ``tolerance`` is in voxels.
    """
    try:
        t = np.linalg.solve(np.asarray(dst_affine, float), np.asarray(src_affine, float))
    except np.linalg.LinAlgError:  # a degenerate affine describes no grid
        return None
    lin = t[:3, :3]
    perm = np.rint(lin)
    # the largest drift, in dst voxels, that the non-permutation part causes at the far corner of src
    drift = np.abs(lin - perm) @ (np.asarray(src_shape_xyz, float) - 1.0)
    if drift.max() > tolerance:
        return None
    if not (np.abs(perm).sum(axis=0) == 1).all() or not (np.abs(perm).sum(axis=1) == 1).all():
        return None
    order = [0, 0, 0]
    flips = [False, False, False]
    for dst_axis in range(3):
        src_axis = int(np.flatnonzero(perm[dst_axis])[0])
        order[dst_axis] = src_axis
        flips[dst_axis] = perm[dst_axis, src_axis] < 0
        if src_shape_xyz[src_axis] != dst_shape_xyz[dst_axis]:
            return None
        # src index 0 along src_axis must land on dst index 0 (or n-1 when flipped)
        expected = (dst_shape_xyz[dst_axis] - 1) if flips[dst_axis] else 0
        if abs(t[dst_axis, 3] - expected) > tolerance:
            return None
    return (order[0], order[1], order[2]), (flips[0], flips[1], flips[2])


def same_grid(a: np.ndarray, b: np.ndarray, tolerance_mm: float = 1e-3) -> bool:
    """True when two affines agree within ``tolerance_mm`` at the origin and along each axis step."""
    return bool(np.abs(np.asarray(a, float) - np.asarray(b, float))[:3].max() <= tolerance_mm)
