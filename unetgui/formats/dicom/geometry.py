"""Slice geometry of a sorted DICOM stack: affine, spacing from positions, and what is wrong with it."""

from __future__ import annotations

from dataclasses import dataclass

import os

import numpy as np

from unetgui.core import limits
from unetgui.core.errors import DicomError
from unetgui.core.geometry import affine_from_dicom
from unetgui.formats.dicom.headers import FrameRef

#: a gap of k steps (k >= 2, within this fraction of a step) is read as k - 1 missing slices
_GAP_TOLERANCE = 0.05
#: relative deviation of a step from the median step that counts as non-uniform spacing
_UNIFORM_TOLERANCE = 0.01
#: scanners and anonymisers often round positions to 0.1 mm; step noise below this is not irregular
_POSITION_ROUNDING_MM = 0.11
#: drift of the slice positions off the normal, over the whole stack, that counts as tilt: a quarter
#: pixel (below that, projecting on the normal misplaces no voxel by more than rounding does), at least 0.01 mm
_TILT_DRIFT_PIXELS = 0.25
_TILT_DRIFT_MM = 0.01


@dataclass(frozen=True)
class StackGeometry:
    affine: np.ndarray
    slots: tuple[int | None, ...]  # per output slice: index into the frames, or None for an inserted gap slice
    warnings: tuple[str, ...]


def stack_geometry(frames: tuple[FrameRef, ...]) -> StackGeometry:
    """Affine (RAS), output slices and warnings for frames already sorted along the normal."""
    first = frames[0]
    pixel_spacing = first.pixel_spacing
    warnings: list[str] = []
    if pixel_spacing is None:
        pixel_spacing = (1.0, 1.0)
        warnings.append("no PixelSpacing: 1 mm pixels assumed, distances and volumes are not physical")
    single_step = abs(first.file.spacing_between_slices or 0) or abs(first.file.slice_thickness or 0) or 1.0
    if any(f.position is None or f.orientation is None for f in frames):
        if len(frames) > 1:
            warnings.append("no patient position/orientation: slices stacked in instance order "
                            f"{single_step:g} mm apart; the geometry is assumed, not known")
        else:
            warnings.append("no patient position/orientation: the geometry is assumed, not known")
        o = first.orientation or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        normal = np.cross(o[:3], o[3:])
        origin = np.asarray(first.position if first.position is not None else (0.0, 0.0, 0.0))
        affine = affine_from_dicom(o[:3], o[3:], pixel_spacing, origin, normal * single_step)
        return StackGeometry(affine, tuple(range(len(frames))), tuple(warnings))
    o = np.asarray(first.orientation)
    row_dir, col_dir = o[:3], o[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.asarray([f.position for f in frames], float)
    if len(frames) == 1:
        affine = affine_from_dicom(row_dir, col_dir, pixel_spacing, positions[0], normal * single_step)
        return StackGeometry(affine, (0,), tuple(warnings))
    along = positions @ normal
    steps = np.diff(along)
    step = float(np.median(steps))
    if not np.isfinite(step) or step <= 1e-6:
        raise DicomError(f"{os.path.basename(first.path)}: the images do not form a stack (several lie in the "
                         "same plane); open them one by one or check the series")
    slots: list[int | None] = [0]
    gaps = []
    irregular = []
    for i, s in enumerate(steps):
        k = int(round(s / step))
        if k >= 2 and abs(s - k * step) <= _GAP_TOLERANCE * step:
            if len(slots) + k > limits.MAX_SLICES:  # checked before the gap's slots are made
                raise DicomError(f"{os.path.basename(frames[i + 1].path)}: lies {s:.4g} mm ({k - 1:,} missing slices) "
                                 f"past the slice before it; filling that gap would make more than {limits.MAX_SLICES:,} "
                                 "slices: remove the stray file or check the series")
            gaps.append((i, k - 1, s))
            slots.extend([None] * (k - 1))
        elif abs(s - step) > _UNIFORM_TOLERANCE * step + _POSITION_ROUNDING_MM:
            irregular.append(s)
        slots.append(i + 1)
    if gaps:
        missing = sum(k for _, k, _ in gaps)
        where = "; ".join(f"{k} after slice {i} (gap {s:.3g} mm)" for i, k, s in gaps)
        warnings.append(f"missing slices: {missing} slice(s) missing ({where}); blank slices were inserted "
                        f"so that every slice stays at its true position ({step:.3g} mm apart)")
    # mean step vector from first to last slice, in slice units of the output grid
    total = positions[-1] - positions[0]
    step_vec = total / (len(slots) - 1)
    if irregular:
        warnings.append(f"non-uniform slice spacing: steps from {steps.min():.4g} to {steps.max():.4g} mm; "
                        f"the volume uses the mean step {float(step_vec @ normal):.4g} mm, so slice positions "
                        "are approximate")
    drift = np.linalg.norm(total - normal * float(total @ normal))
    if drift > max(_TILT_DRIFT_MM, _TILT_DRIFT_PIXELS * min(pixel_spacing)):
        angle = float(np.degrees(np.arccos(min(1.0, abs(float(step_vec @ normal)) / np.linalg.norm(step_vec)))))
        warnings.append(f"gantry tilt: the slices are sheared by {angle:.1f} degrees against their normal; the "
                        "affine keeps every voxel at its true position (a sheared grid: some tools that expect "
                        "orthogonal NIfTI may warn)")
    else:
        step_vec = normal * float(step_vec @ normal)  # orthogonal grid; position noise is below 0.01 mm
    affine = affine_from_dicom(row_dir, col_dir, pixel_spacing, positions[0], step_vec)
    return StackGeometry(affine, tuple(slots), tuple(warnings))
