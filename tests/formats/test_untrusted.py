"""Crafted files that claim huge sizes or are not files at all (issue 12, items 2 and 3): every reader checks
the header against core/limits.py before allocating, answers in one line, and never blocks on a pipe or a
device. Each case is a small file built in tmp_path, as an attacker or a broken disk would make it."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib

import nibabel as nib
import numpy as np
import pydicom
import pytest

from unetgui import cli
from unetgui.core import limits
from unetgui.core.errors import DicomError, FormatError
from unetgui.formats import nifti, png
from unetgui.formats.dicom import load_series, scan
from unetgui.formats.dicom.writer import SeriesSpec, write_series


def _series_at(folder, z_mm: list[float], phantom) -> list[str]:
    """One CT file per position along z (the writer's files, positions rewritten)."""
    paths = write_series(phantom[:len(z_mm)], str(folder), SeriesSpec(slice_spacing=1.0))
    for path, z in zip(paths, z_mm):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [-100.0, -100.0, float(z)]
        ds.save_as(path)
    return paths


def test_a_stray_slice_far_away_is_refused_not_gap_filled(tmp_path, phantom, capsys):
    """z = 0, 1, 2, 3 and 1,000,003: filling the 'gap' would allocate 488 GiB."""
    _series_at(tmp_path / "ct", [0, 1, 2, 3, 1_000_003], phantom)
    (series,) = scan(str(tmp_path / "ct")).series
    with pytest.raises(DicomError, match="999,999 missing slices.*more than 20,000 slices"):
        load_series(series)
    out = tmp_path / "x.nii.gz"
    assert cli.main(["convert", "--input", str(tmp_path / "ct"), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "remove the stray file" in err and "Traceback" not in err and not out.exists()


def test_a_real_gap_is_still_filled(tmp_path, phantom):
    _series_at(tmp_path / "ct", [0, 1, 2, 5, 6], phantom)  # two lost files
    (series,) = scan(str(tmp_path / "ct")).series
    volume = load_series(series)
    assert volume.shape[0] == 7 and any("2 slice(s) missing" in w for w in volume.warnings)


def test_a_header_claiming_millions_of_frames_is_skipped_at_once(tmp_path, phantom):
    (path,) = write_series(phantom[:1], str(tmp_path / "ct"))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.NumberOfFrames = 3_000_000
    ds.save_as(path)
    result = scan(str(tmp_path / "ct"))
    assert not result.series
    ((_, reason),) = result.skipped
    assert reason.startswith("implausible size") and "slices are more than unetgui opens" in reason
    ds.NumberOfFrames = 2  # within the limits, but 2 frames of 64 x 80 int16 cannot fit in the file
    ds.save_as(path)
    ((_, reason),) = scan(str(tmp_path / "ct")).skipped
    assert "claims 2 frame(s) of 64 x 80 (20,480 bytes at least), but the file has" in reason


def test_shared_edge_cases_still_scan_as_before():
    """The plausibility check skips nothing the real files of the shared data hold (its 22-file CT)."""
    from conftest import DATA

    result = scan(str(DATA / "totalsegmentator-example-ct-dicom"))
    assert [s.slice_count for s in result.series] == [20] and "implausible" not in result.skipped_summary()


def _npy_header(shape, descr="|u1") -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_a_labels_snapshot_claiming_terabytes_is_refused_before_reading(tmp_path):
    from unetgui.core.volume import LabelTable, Volume
    from unetgui.project.store import Project

    volume = Volume(np.zeros((4, 8, 8), np.int16), np.eye(4), "CT")
    nifti.write_image(volume, str(tmp_path / "ct.nii.gz"))
    project = Project.create(str(tmp_path / "proj"), LabelTable.from_names("Liver"))
    entry = project.add_series(str(tmp_path / "ct.nii.gz"), volume, "nifti")
    project.save_labels(entry.id, np.zeros((4, 8, 8), np.uint8), np.zeros(4, bool), np.zeros(4, bool))
    path = project.labels_path(entry.id)
    with zipfile.ZipFile(path, "w") as archive:  # 700 bytes that claim 2e6 x 1000 x 1000 voxels
        archive.writestr("labels.npy", _npy_header((2_000_000, 1000, 1000)))
        archive.writestr("reviewed.npy", _npy_header((4,), "|b1") + bytes(4))
        archive.writestr("test.npy", _npy_header((4,), "|b1") + bytes(4))
        archive.writestr("token.npy", _npy_header((), "<U1") + b"a\0\0\0")
    with pytest.raises(FormatError, match="2,000,000 slices are more than unetgui opens"):
        project.read_labels(entry.id)
    with zipfile.ZipFile(path, "w") as archive:  # within the limits, but not the series' shape
        archive.writestr("labels.npy", _npy_header((5, 8, 8)) + bytes(320))
        archive.writestr("reviewed.npy", _npy_header((5,), "|b1") + bytes(5))
        archive.writestr("test.npy", _npy_header((5,), "|b1") + bytes(5))
    with pytest.raises(FormatError, match=r"labels is uint8 \(5, 8, 8\), the series needs uint8 \(4, 8, 8\)"):
        project.read_labels(entry.id)


def _rewrite_model(src: str, dst: str, **changes) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(src, framework="pt") as f:
        meta = json.loads(f.metadata()["unetgui"])
    for key, value in changes.items():
        section, name = key.split("__")
        meta[section][name] = value
    save_file(load_file(src), dst, metadata={"unetgui": json.dumps(meta)})


def test_a_model_file_claiming_a_huge_network_is_refused_before_building_it(tmp_path):
    from engine_fixtures import tiny_checkpoint
    from unetgui.engine import checkpoint as model_file

    good = str(tmp_path / "good.unetgui")
    model_file.save(tiny_checkpoint(), good)
    for changes, message in (({"architecture__base": 200_000}, "base width must be 2..128"),
                             ({"preprocessing__working_size": 1_000_000}, "working size must be 16..16384"),
                             # valid settings, 2e9 parameters (8 GB): refused from shapes on the meta device
                             ({"architecture__base": 128, "architecture__depth": 6}, "weights do not fit")):
        bad = str(tmp_path / "bad.unetgui")
        _rewrite_model(good, bad, **changes)
        with pytest.raises(FormatError, match=message):
            model_file.load(bad)


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR chunk (CRC right) claiming ``width x height``, then a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_a_png_claiming_ten_billion_pixels_is_a_one_line_error(tmp_path):
    (tmp_path / "a.png").write_bytes(_png_claiming(100_000, 100_000))  # 70 bytes
    with pytest.raises(FormatError, match="a.png: slices of 100000 x 100000 pixels are larger than unetgui opens"):
        png.read_image(str(tmp_path / "a.png"))
    # formats whose headers unetgui does not read: OpenCV's own limit, set to the app's when unetgui is imported
    assert os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] == str(limits.MAX_SIDE ** 2)


def test_a_nifti_claiming_more_bytes_than_its_file_is_refused_before_reading(tmp_path):
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float64), np.eye(4))
    img.header.set_data_shape((1000, 1000, 400))  # 3.2 GB of float64 in a ~400-byte file
    path = tmp_path / "x.nii.gz"
    path.write_bytes(gzip.compress(img.header.binaryblock + b"\0" * 4))
    with pytest.raises(FormatError, match="the header claims 3,200,000,000 bytes of voxels"):
        nifti.read_image(str(path))


def test_the_limits_count_bytes_not_voxels(tmp_path):
    """Issue 24: 1000 x 1000 x 1000 voxels are within the voxel limit, but as float64 they are 7.5 GiB."""
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float64), np.eye(4))
    img.header.set_data_shape((1000, 1000, 1000))
    path = tmp_path / "x.nii"
    path.write_bytes(img.header.binaryblock + b"\0" * 4 + b"\0" * 512)
    with pytest.raises(FormatError, match="voxels of 8 bytes = 7.5 GiB is more than unetgui opens"):
        nifti.read_image(str(path))


def test_info_on_nifti_reads_the_header_only(tmp_path, capsys):
    """A 1.1 MB .nii.gz used to be decompressed whole (608 MB) by `info`; a truncated body shows it is not read."""
    path = tmp_path / "big.nii.gz"
    img = nib.Nifti1Image(np.zeros((5, 5, 6), np.int16), np.diag([0.8, 0.8, 2.0, 1.0]))
    img.header.set_data_shape((500, 500, 600))
    path.write_bytes(gzip.compress(img.header.binaryblock + b"\0" * 4))  # header + extension flag, no voxels
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "500 x 500 x 600 voxels of 0.8 x 0.8 x 2 mm, int16" in out
    huge = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    huge.header.set_data_shape((16_000, 16_000, 10_000))
    path.write_bytes(gzip.compress(huge.header.binaryblock + b"\0" * 4))
    assert cli.main(["info", str(path)]) == 1
    assert "= 2,560,000,000,000 voxels is more than unetgui opens" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_or_a_link_to_a_device_in_a_dicom_folder_never_hangs_a_scan(tmp_path, phantom):
    write_series(phantom[:3], str(tmp_path / "ct"))
    os.mkfifo(tmp_path / "ct" / "pipe")
    os.symlink("/dev/zero", tmp_path / "ct" / "zero")
    run = subprocess.run([sys.executable, "-m", "unetgui", "info", str(tmp_path / "ct")], capture_output=True,
                         text=True, timeout=60)  # a hang fails here instead of blocking the suite
    assert run.returncode == 0, run.stderr
    assert "1 series in 5 file(s)" in run.stdout and "2 not a regular file" in run.stdout
    with pytest.raises(FormatError, match="not a regular file"):
        png.read_image(str(tmp_path / "ct" / "pipe"))
    assert not limits.is_regular_file(str(tmp_path / "ct" / "zero"))


def test_a_model_file_with_a_malformed_preprocessing_window_is_one_line(tmp_path, capsys):
    """Found by the 4,868-case fuzz run (issue 24): a window of one number ended predict with exit 3."""
    import json
    import struct
    from pathlib import Path

    from unetgui import cli

    source = Path(__file__).resolve().parents[2] / "resources" / "sample" / "model.unetgui"
    if not source.is_file():
        pytest.skip("sample model not built")
    raw = source.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + size])
    for window in ([1], "ab", [1, "x"], None):
        meta = json.loads(head["__metadata__"]["unetgui"])
        meta["preprocessing"]["window"] = window
        doc = dict(head, __metadata__=dict(head["__metadata__"], unetgui=json.dumps(meta)))
        text = json.dumps(doc).encode()
        text += b" " * (-len(text) % 8)
        path = tmp_path / "m.unetgui"
        path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + size:])
        assert cli.main(["info", str(path)]) == 1
        assert "window in the model file must be two numbers" in capsys.readouterr().err


def test_a_deflated_dicom_that_inflates_past_the_limit_is_refused_without_inflating_it_in_memory(tmp_path, monkeypatch,
                                                                                                capsys):
    """Issue 24: pydicom inflates a Deflated Explicit VR file whole; unetgui measures it in steps first."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    from unetgui import cli
    from unetgui.formats.dicom import headers

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.Rows, ds.Columns = "CT", 8, 8
    ds.add_new(0x00091010, "OB", bytes(8 << 20))  # 8 MiB of zeros: a few kB deflated
    folder = tmp_path / "d"
    folder.mkdir()
    ds.save_as(str(folder / "bomb.dcm"), enforce_file_format=True)
    assert (folder / "bomb.dcm").stat().st_size < 100_000
    monkeypatch.setattr(headers, "MAX_INFLATED", 1 << 20)  # the real limit is 4 GiB: the same rule at a test's size
    with pytest.raises(FormatError, match="inflates to more than 1,048,576 bytes"):
        headers.read_dataset(str(folder / "bomb.dcm"))
    from unetgui.formats.dicom import scan

    (path, why), = scan(str(folder)).skipped  # a scan skips it and says why
    assert path.endswith("bomb.dcm") and "inflates to more than" in why
    assert cli.main(["info", str(folder)]) == 1 and "1 file(s) skipped: 1 unreadable" in capsys.readouterr().out
