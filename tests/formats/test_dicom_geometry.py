"""DICOM -> volume geometry against dicom2nifti's expected NIfTIs, real edge cases and synthetic series."""

from __future__ import annotations

import os
import random
import shutil
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from conftest import DATA, phantom_hu
from unetgui.core.geometry import voxel_to_world
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series

D2N = DATA / "dicom2nifti-test-series"
EXPECTED = sorted(p for p in D2N.rglob("*_expected_nifti.nii.gz") if "failing" not in p.parts)


def _canonical(volume) -> nib.Nifti1Image:
    return nib.as_closest_canonical(nib.Nifti1Image(volume.voxels.transpose(2, 1, 0), volume.affine))


def _compare(volume, expected: nib.Nifti1Image, data: np.ndarray) -> None:
    ours = _canonical(volume)
    ref = nib.as_closest_canonical(nib.Nifti1Image(data, expected.affine))
    assert ours.shape == ref.shape
    assert np.abs(ours.affine - ref.affine).max() < 1e-3
    assert np.allclose(np.asanyarray(ours.dataobj), np.asanyarray(ref.dataobj), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("expected_path", EXPECTED, ids=lambda p: str(p.relative_to(D2N)).replace("_expected_nifti.nii.gz", ""))
def test_dicom_to_volume_matches_dicom2nifti_in_world_space(expected_path):
    folder = str(expected_path).replace("_expected_nifti.nii.gz", "")
    result = scan(folder)
    expected = nib.load(expected_path)
    data = np.asanyarray(expected.dataobj)
    if data.dtype.names:  # RGB NIfTI: we load colour as luminance, compare with the same formula
        data = sum(w * data[c].astype(np.float32) for w, c in ((0.299, "R"), (0.587, "G"), (0.114, "B")))
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 4:  # 4-D series: we split it into one series per volume, in acquisition order
        assert len(result.series) == data.shape[3]
        for t, series in enumerate(result.series):
            volume = load_series(series)
            assert any("4-D series" in w for w in volume.warnings)
            _compare(volume, expected, data[..., t])
        return
    (series,) = result.series
    volume = load_series(series)
    _compare(volume, expected, data)
    if volume.modality != "MR" or "rgb" not in folder:
        assert volume.voxels.dtype != np.float64


def _load_one(folder):
    (series,) = scan(str(folder)).series
    return load_series(series)


def test_gantry_tilt_is_a_warning_and_the_affine_keeps_true_positions():
    folder = D2N / "failing" / "gantrytilting" / "001"
    volume = _load_one(folder)
    assert any("gantry tilt" in w and "14.0 degrees" in w for w in volume.warnings)
    import pydicom

    for k, source in enumerate(volume.sources):
        ipp = np.asarray(pydicom.dcmread(source.path, stop_before_pixels=True).ImagePositionPatient, float)
        world = voxel_to_world(volume.affine, [k, 0, 0])
        assert world == pytest.approx(ipp * [-1, -1, 1], abs=1e-3)  # LPS -> RAS


def test_missing_slice_is_filled_so_every_slice_keeps_its_position():
    volume = _load_one(D2N / "failing" / "sliceincrement" / "001")
    assert any("missing slices" in w for w in volume.warnings)
    assert volume.shape[0] == 5 and volume.sources[3] is None
    assert volume.spacing[0] == pytest.approx(5.0, abs=1e-3)
    import pydicom

    for k, source in enumerate(volume.sources):
        if source is None:
            continue
        ipp = np.asarray(pydicom.dcmread(source.path, stop_before_pixels=True).ImagePositionPatient, float)
        assert voxel_to_world(volume.affine, [k, 0, 0]) == pytest.approx(ipp * [-1, -1, 1], abs=1e-3)


def test_tilted_stack_with_a_gap_warns_twice():
    # dicom2nifti resamples this case (its expected output is 514 columns wide); unetgui never resamples
    volume = _load_one(D2N / "failing" / "sliceincrement" / "002")
    assert any("missing slices" in w for w in volume.warnings)
    assert any("gantry tilt" in w for w in volume.warnings)


def test_two_slice_series_matches_its_expected_nifti():
    volume = _load_one(D2N / "failing" / "slicecount" / "001")
    expected = nib.load(D2N / "failing" / "slicecount" / "001_expected_nifti.nii.gz")
    _compare(volume, expected, np.asanyarray(expected.dataobj))


def test_mixed_orientations_split_into_clean_stacks():
    result = scan(str(D2N / "failing" / "sliceorientation" / "001"))
    assert [s.slice_count for s in result.series] == [2, 2]
    assert len({s.key for s in result.series}) == 2
    for series in result.series:
        volume = load_series(series)
        assert any("separate series" in w for w in volume.warnings)
        orientations = {tuple(np.round(f.orientation, 4)) for f in series.frames}
        assert len(orientations) == 1


def test_images_at_one_position_are_not_a_volume():
    result = scan(str(D2N / "failing" / "notavolume" / "001"))
    assert len(result.series) == 4 and all(s.slice_count == 1 for s in result.series)
    assert all(any("not a volume" in n for n in s.notes) for s in result.series)


def test_totalsegmentator_ct_spacing_comes_from_positions_not_slice_thickness():
    folder = DATA / "totalsegmentator-example-ct-dicom"
    result = scan(str(folder))
    (series,) = result.series  # blank SeriesInstanceUIDs still make one series
    volume = load_series(series)
    assert volume.shape == (20, 512, 512)
    assert volume.modality == "CT"
    assert volume.voxels.dtype == np.int16
    assert volume.spacing[0] == pytest.approx(2.0, abs=1e-3)
    assert volume.voxels.min() >= -1024 and volume.voxels.max() > 500  # HU: air to bone
    assert volume.warnings == ()


def test_file_order_and_names_are_irrelevant(tmp_path):
    source = DATA / "totalsegmentator-example-ct-dicom"
    reference = _load_one(source)
    files = sorted(p for p in (source / "dicom").iterdir() if p.is_file())
    assert len(files) == 20
    random.Random(7).shuffle(files)
    target = tmp_path / "shuffled"
    for i, f in enumerate(files):
        sub = target / f"d{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, sub / f"zz_{i:03d}.bin")
    shuffled = _load_one(target)
    assert np.array_equal(shuffled.voxels, reference.voxels)
    assert np.allclose(shuffled.affine, reference.affine)


@pytest.mark.parametrize("orientation", [
    (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),  # axial
    (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),  # sagittal
    (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),  # coronal
    (0.9848078, 0.1736482, 0.0, -0.1736482, 0.9848078, 0.0),  # axial, rotated 10 degrees in plane
])
def test_synthetic_series_round_trip_voxels_and_world_positions(tmp_path, orientation, phantom):
    spec = SeriesSpec(orientation=orientation, origin=(12.5, -40.0, 100.0), pixel_spacing=(0.7, 0.9),
                      slice_spacing=2.5, slice_thickness=5.0)
    paths = write_series(phantom, str(tmp_path), spec)
    random.Random(1).shuffle(paths)
    for i, p in enumerate(paths):  # names that sort in the wrong order
        os.rename(p, tmp_path / f"{(i * 7919) % 1000:04d}")
    volume = _load_one(tmp_path)
    assert np.array_equal(volume.voxels, phantom)
    assert volume.voxels.dtype == np.int16
    assert volume.spacing == pytest.approx((2.5, 0.7, 0.9))
    o = np.asarray(orientation)
    normal = np.cross(o[:3], o[3:])
    for k in (0, phantom.shape[0] - 1):
        for (y, x) in ((0, 0), (5, 9)):
            lps = np.asarray(spec.origin) + k * 2.5 * normal + x * 0.9 * o[:3] + y * 0.7 * o[3:]
            assert voxel_to_world(volume.affine, [k, y, x]) == pytest.approx(lps * [-1, -1, 1], abs=1e-4)


def test_reversed_slice_direction_sorts_by_position(tmp_path, phantom):
    # slices written with a negative step along the normal: volume order follows the normal, not the files
    spec = SeriesSpec(slice_spacing=-3.0)
    write_series(phantom, str(tmp_path), spec)
    volume = _load_one(tmp_path)
    assert np.array_equal(volume.voxels, phantom[::-1])
    assert volume.spacing[0] == pytest.approx(3.0)


def test_large_ct_loads_as_int16_without_float64_copies(tmp_path):
    shape = (600, 512, 512)
    slab = phantom_hu((4, 512, 512))
    voxels = np.concatenate([slab] * (shape[0] // 4))
    write_series(voxels, str(tmp_path), SeriesSpec(slice_spacing=1.0))
    (series,) = scan(str(tmp_path)).series
    tracemalloc.start()
    volume = load_series(series)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert volume.voxels.dtype == np.int16 and volume.shape == shape
    out_bytes = volume.voxels.nbytes
    assert peak < out_bytes * 1.1, f"peak {peak / 2**20:.0f} MiB for a {out_bytes / 2**20:.0f} MiB volume"
    assert np.array_equal(volume.voxels[:8], voxels[:8])


def test_values_beyond_the_declared_range_widen_the_output_instead_of_wrapping():
    from unetgui.formats.dicom.load import _store

    out = np.zeros((2, 2, 2), np.int16)
    out = _store(out, 0, np.array([[100, 0], [1, 2]], np.uint16), -1024)
    assert out.dtype == np.int16 and out[0].tolist() == [[-924, -1024], [-1023, -1022]]
    out = _store(out, 1, np.array([[40000, 0], [100, 65535]], np.uint16), -20000)
    assert out.dtype == np.int32
    assert out[1].tolist() == [[20000, -20000], [-19900, 45535]]
    assert out[0].tolist() == [[-924, -1024], [-1023, -1022]]  # earlier slices survive the widening
