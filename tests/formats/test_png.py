"""2-D image and mask folders, and per-slice label PNG export, on the ISBI 2012 data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import DATA
from unetgui.core.errors import FormatError
from unetgui.formats import png

ISBI = DATA / "isbi2012-membrane" / "train"


def test_isbi_stack_and_binary_masks():
    volume, names = png.read_image_folder(str(ISBI / "image"))
    assert volume.shape == (25, 512, 512) and volume.voxels.dtype == np.uint8
    assert names[:3] == ["0.png", "1.png", "2.png"] and names[10] == "10.png"  # natural order
    masks = png.read_mask_folder(str(ISBI / "label"), names)
    assert masks.shape == (25, 512, 512) and masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1}  # {0, 255} read as {0, 1}
    raw = cv2.imread(str(ISBI / "label" / "7.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(masks[7], (raw == 255).astype(np.uint8))
    membrane = 1 - masks.mean()
    assert 0.15 < membrane < 0.3  # the README says about 22 % membrane


def test_multilabel_and_uint16(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[2:5, 3:9] = 1
    mask[10:12, :] = 3
    mask[0, 0] = 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    assert np.array_equal(png.read_mask(str(tmp_path / "m.png")), mask)  # 255 among labels = not annotated
    image = (np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    cv2.imwrite(str(tmp_path / "i.png"), image)
    assert np.array_equal(png.read_image(str(tmp_path / "i.png")), image)


def test_label_png_export_round_trips_exact_values(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (3, 16, 24)).astype(np.uint8)
    paths = png.write_label_pngs(labels, str(tmp_path / "out"))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["slice_0000.png", "slice_0001.png", "slice_0002.png"]
    back = np.stack([cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in paths])
    assert back.dtype == np.uint8 and np.array_equal(back, labels)


def test_bad_folders_give_clear_errors(tmp_path):
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "imgs" / "b.png"), np.zeros((8, 9), np.uint8))
    with pytest.raises(FormatError, match="differ in size"):
        png.read_image_folder(str(tmp_path / "imgs"))
    with pytest.raises(FormatError, match="no mask"):
        png.read_mask_folder(str(tmp_path / "imgs"), ["a.png", "zzz.png"])
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 2] = 200
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    with pytest.raises(FormatError, match="colour masks"):
        png.read_mask(str(tmp_path / "c.png"))
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(FormatError, match="not a readable image"):
        png.read_image(str(tmp_path / "junk.png"))
