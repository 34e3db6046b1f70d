"""NIfTI images and label volumes: exact round trips, label grids from other tools, refusals."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from unetgui.core.errors import FormatError, GeometryError
from unetgui.core.volume import LabelMap, LabelTable
from unetgui.formats import nifti
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series


@pytest.fixture
def ct(tmp_path, phantom):
    spec = SeriesSpec(orientation=(1, 0, 0, 0, 0.9659258, -0.2588190), pixel_spacing=(0.75, 0.8), slice_spacing=3.0)
    write_series(phantom, str(tmp_path / "dicom"), spec)
    (series,) = scan(str(tmp_path / "dicom")).series
    return load_series(series)


def _labels(volume) -> LabelMap:
    lm = LabelMap.empty_like(volume, LabelTable.from_names("liver", "tumour"))
    lm.labels[volume.voxels > 60] = 1
    lm.labels[3, 10:20, 30:40] = 2
    lm.labels[0] = 255  # not annotated
    return lm


def test_image_round_trip_keeps_voxels_dtype_and_affine(tmp_path, ct):
    path = str(tmp_path / "ct.nii.gz")
    nifti.write_image(ct, path)
    back = nifti.read_image(path)
    assert back.voxels.dtype == np.int16
    assert np.array_equal(back.voxels, ct.voxels)
    assert np.allclose(back.affine, ct.affine, atol=1e-4)
    header = nib.load(path).header
    assert header["sform_code"] == 1 and header["qform_code"] == 1
    assert header.get_xyzt_units() == ("mm", "sec")


def test_label_round_trip_is_exact(tmp_path, ct):
    lm = _labels(ct)
    path = str(tmp_path / "labels.nii.gz")
    nifti.write_labels(lm, path)
    back = nifti.read_labels(path, ct, lm.table)
    assert back.labels.dtype == np.uint8
    assert np.array_equal(back.labels, lm.labels)
    assert back.fits(ct)
    assert nib.load(path).header.get_intent()[0] == "label"


@pytest.mark.parametrize("reorient", ["canonical", "flip_x", "swap_xy", "reverse_z"])
def test_labels_stored_with_permuted_or_flipped_axes_map_voxel_exactly(tmp_path, ct, reorient):
    lm = _labels(ct)
    data = lm.labels.transpose(2, 1, 0)  # (x, y, z)
    img = nib.Nifti1Image(data, ct.affine)
    if reorient == "canonical":  # what ITK-SNAP/Slicer/dcm2niix-style tools often write (RAS+ axes)
        img = nib.as_closest_canonical(img)
    else:
        ornt = {"flip_x": [[0, -1], [1, 1], [2, 1]], "swap_xy": [[1, 1], [0, 1], [2, 1]],
                "reverse_z": [[0, 1], [1, 1], [2, -1]]}[reorient]
        img = img.as_reoriented(np.asarray(ornt))
    assert not np.array_equal(np.asarray(img.dataobj).shape, data.shape) or not np.array_equal(np.asarray(img.dataobj), data)
    path = str(tmp_path / "other_tool.nii.gz")
    nib.save(img, path)
    back = nifti.read_labels(path, ct)
    assert np.array_equal(back.labels, lm.labels)
    assert back.table.values == (1, 2)


def test_labels_on_another_grid_are_refused_not_resampled(tmp_path, ct):
    lm = _labels(ct)
    shifted = ct.affine.copy()
    shifted[:3, 3] += ct.affine[:3, 0] * 0.5  # half a voxel along x
    path = str(tmp_path / "shifted.nii.gz")
    nib.save(nib.Nifti1Image(lm.labels.transpose(2, 1, 0), shifted), path)
    with pytest.raises(GeometryError, match="does not resample"):
        nifti.read_labels(path, ct)
    cropped = str(tmp_path / "cropped.nii.gz")
    nib.save(nib.Nifti1Image(lm.labels.transpose(2, 1, 0)[:, :, 1:], ct.affine), cropped)
    with pytest.raises(GeometryError):
        nifti.read_labels(cropped, ct)


def test_non_label_data_is_refused(tmp_path, ct):
    path = str(tmp_path / "probabilities.nii.gz")
    nib.save(nib.Nifti1Image(np.full(ct.shape[::-1], 0.3, np.float32), ct.affine), path)
    with pytest.raises(FormatError, match="whole numbers"):
        nifti.read_labels(path, ct)
    neg = str(tmp_path / "negative.nii.gz")
    nib.save(nib.Nifti1Image(np.full(ct.shape[::-1], -1, np.int16), ct.affine), neg)
    with pytest.raises(FormatError, match="0..255"):
        nifti.read_labels(neg, ct)


def test_unreadable_file_gives_a_format_error(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti file at all")
    with pytest.raises(FormatError):
        nifti.read_image(str(bad))
    with pytest.raises(FormatError, match="no such file"):
        nifti.read_image(str(tmp_path / "missing.nii"))


def test_scaled_and_4d_images(tmp_path):
    data = np.arange(2 * 3 * 4 * 2, dtype=np.int16).reshape(2, 3, 4, 2)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(0.5, -10)
    path = str(tmp_path / "scaled4d.nii.gz")
    nib.save(img, path)
    volume = nifti.read_image(path)
    assert volume.voxels.dtype == np.float32
    assert np.allclose(volume.voxels, (data[..., 0] * 0.5 - 10).transpose(2, 1, 0))
    assert any("4-D" in w for w in volume.warnings)
