"""Which anatomical plane each array axis shows and how it is turned to radiological convention, checked
against nibabel's own orientation code (an independent library) on real series of five vendors."""

from __future__ import annotations


import nibabel as nib
import numpy as np
import pytest

from unetgui.core.geometry import LPS_TO_RAS, SCREEN, display_transform, plane_names
from unetgui.core.tools import structure_extent


def _screen_vectors(affine, axis):
    """(down, right) world vectors of the displayed plane after display_transform."""
    a = np.asarray(affine, float)[:3, :3]
    rows, cols = (k for k in range(3) if k != axis)
    transpose, flip_rows, flip_cols = display_transform(affine, axis)
    down, right = (a[:, 2 - k] for k in ((cols, rows) if transpose else (rows, cols)))
    return down * (-1 if flip_rows else 1), right * (-1 if flip_cols else 1)


def test_an_axial_dicom_ct_is_shown_as_stored_and_a_ras_nifti_flipped():
    ct = LPS_TO_RAS @ np.diag([0.7, 0.7, 2.5, 1.0])
    assert plane_names(ct) == ("axial", "coronal", "sagittal")
    assert display_transform(ct, 0) == (False, False, False)
    assert display_transform(np.diag([0.7, 0.7, 2.5, 1.0]), 0) == (False, True, True)


@pytest.mark.parametrize("vendor", ["generic", "hitachi", "hyperfine", "philips", "philips_enhanced", "siemens",
                                    "siemens_multiframe"])
def test_every_plane_of_real_series_ends_in_radiological_convention(vendor, data_dir):
    from unetgui.formats.inputs import open_image

    volume = open_image(str(data_dir / "dicom2nifti-test-series" / vendor / "anatomical")).volume
    # nibabel: the world axis (0 R, 1 A, 2 S) each array axis (x, y, z) runs along
    world_of_xyz = nib.orientations.io_orientation(volume.affine)[:, 0].astype(int)
    names = plane_names(volume.affine)
    for axis in range(3):  # array axis 0 is z: the plane across it is named by the world axis z runs along
        assert names[axis] == ("sagittal", "coronal", "axial")[world_of_xyz[2 - axis]]
        down, right = _screen_vectors(volume.affine, axis)
        want_down, want_right = (np.asarray(v) for v in SCREEN[names[axis]])
        assert down @ want_down > 0.7 * np.linalg.norm(down) and right @ want_right > 0.7 * np.linalg.norm(right)


def test_structure_extent_finds_a_voxel_of_a_curved_label_and_its_box():
    labels = np.zeros((6, 40, 40), np.uint8)
    yy, xx = np.mgrid[:40, :40]
    ring = (np.hypot(yy - 20, xx - 20) < 12) & (np.hypot(yy - 20, xx - 20) > 9)
    labels[2:4][:, ring] = 3
    centre, box = structure_extent(labels, 3)
    assert labels[centre] == 3  # the centre of mass (20, 20) lies in the hole
    assert box == (slice(2, 4), slice(9, 32), slice(9, 32))
    assert structure_extent(labels, 4) is None
