"""Edge cases found in review: Enhanced files, odd positions and UIDs, bad masks and label files."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest

from conftest import DATA
from dicom_builders import write_enhanced_ct
from unetgui.core.errors import FormatError, GeometryError
from unetgui.core.geometry import voxel_to_world
from unetgui.core.volume import LabelMap, LabelTable
from unetgui.formats import nifti, png
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series
from unetgui.formats.dicom_seg import read_dicom_seg, write_dicom_seg


def test_single_frame_enhanced_ct_uses_its_functional_groups(tmp_path):
    frame = np.array([[671, 1409], [249, 0]], np.int16)
    write_enhanced_ct(str(tmp_path / "one.dcm"), [frame], [(-1.0, -2.0, 3.0)], spacing=(0.6, 0.9), slope=2.0)
    (series,) = scan(str(tmp_path)).series
    volume = load_series(series)
    assert volume.voxels[0].tolist() == (frame.astype(float) * 2 - 1024).tolist()
    assert volume.spacing[1:] == pytest.approx((0.6, 0.9))
    assert voxel_to_world(volume.affine, [0, 0, 0]) == pytest.approx([1.0, 2.0, 3.0])
    assert not any("assumed" in w for w in volume.warnings)


def test_enhanced_frames_in_reverse_order_sort_by_position_and_split_4d(tmp_path):
    frames = [np.full((3, 3), 10 * t + z, np.int16) for z in (2, 1, 0) for t in (0, 1)]
    positions = [(0, 0, 2.0 * z) for z in (2, 1, 0) for _ in (0, 1)]
    write_enhanced_ct(str(tmp_path / "e.dcm"), frames, positions, intercept=0, temporal=[1, 2] * 3)
    first, second = scan(str(tmp_path)).series
    assert load_series(first).voxels[:, 0, 0].tolist() == [0, 1, 2]
    assert load_series(second).voxels[:, 0, 0].tolist() == [10, 11, 12]


def test_seg_on_a_multiframe_source_keeps_frames_at_their_positions(tmp_path):
    (series,) = scan(str(DATA / "pydicom-data" / "data" / "eCT_Supplemental.dcm")).series
    volume = load_series(series)
    assert [s.frame for s in volume.sources] == [1, 0]  # the file stores its frames top-down
    labels = LabelMap.empty_like(volume, LabelTable.from_names("mark"))
    labels.labels[0, :4, :4] = 1
    path = str(tmp_path / "seg.dcm")
    write_dicom_seg(labels, volume, path)
    back, _ = read_dicom_seg(path, volume)
    assert np.array_equal(back.labels, labels.labels)
    seg = pydicom.dcmread(path)
    painted = [i for i in range(int(seg.NumberOfFrames)) if seg.pixel_array[i].any()]
    (frame,) = painted  # the SEG frame with pixels lies where slice 0 lies
    position = seg.PerFrameFunctionalGroupsSequence[frame].PlanePositionSequence[0].ImagePositionPatient
    assert np.asarray(position, float) * [-1, -1, 1] == pytest.approx(voxel_to_world(volume.affine, [0, 0, 0]), abs=1e-3)


def test_images_in_one_plane_shifted_in_plane_are_duplicates_not_a_crash(tmp_path, phantom):
    paths = write_series(phantom[:3], str(tmp_path), SeriesSpec(slice_spacing=2.0))
    ds = pydicom.dcmread(paths[1])
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0] + 5, *ds.ImagePositionPatient[1:]]
    ds.ImagePositionPatient[2] = pydicom.dcmread(paths[0]).ImagePositionPatient[2]
    ds.save_as(paths[1])
    (series,) = scan(str(tmp_path)).series
    volume = load_series(series)
    assert volume.shape[0] == 2 and any("duplicate positions" in w for w in volume.warnings)


def test_files_sharing_one_instance_uid_are_not_collapsed(tmp_path, phantom):
    paths = write_series(phantom[:4], str(tmp_path))
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.SOPInstanceUID = "1.2.3.4"
        ds.save_as(p)
    (series,) = scan(str(tmp_path)).series
    assert load_series(series).shape[0] == 4


def test_positions_rounded_to_a_tenth_of_a_mm_are_not_irregular_or_tilted(tmp_path, phantom):
    spec = SeriesSpec(orientation=(0.9848078, 0.0, 0.1736482, 0.0, 1.0, 0.0), slice_spacing=3.0)
    paths = write_series(phantom, str(tmp_path), spec)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.ImagePositionPatient = [round(float(v), 1) for v in ds.ImagePositionPatient]
        ds.save_as(p)
    (series,) = scan(str(tmp_path)).series
    assert load_series(series).warnings == ()


def test_bad_masks_and_label_files_are_refused_clearly(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "neg.tif"), np.array([[-1, 0], [1, 2]], np.int16))
    with pytest.raises(FormatError, match="0..255"):
        png.read_mask(str(tmp_path / "neg.tif"))
    (tmp_path / "imgs" / "folder.png").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.zeros((4, 4), np.uint8))
    assert [p.rsplit("/", 1)[1] for p in png.list_images(str(tmp_path / "imgs"))] == ["a.png"]
    reference = nifti.read_image(_write(tmp_path / "ref.nii.gz", np.zeros((4, 4, 3), np.int16), np.eye(4)))
    with pytest.raises(FormatError, match="must be 3-D"):
        nifti.read_labels(_write(tmp_path / "onehot.nii.gz", np.zeros((4, 4, 3, 2), np.uint8), np.eye(4)), reference)
    flat = nib.Nifti1Image(np.zeros((4, 4, 3), np.uint8), None)
    flat.header.set_sform(np.diag([1, 1, 0, 1.0]), code=1)  # a readable file with a degenerate grid
    nib.save(flat, str(tmp_path / "flat.nii.gz"))
    with pytest.raises(GeometryError):
        nifti.read_labels(str(tmp_path / "flat.nii.gz"), reference)
    assert any("degenerate" in w for w in nifti.read_image(str(tmp_path / "flat.nii.gz")).warnings)


def _write(path, data, affine) -> str:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)
