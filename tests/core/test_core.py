import numpy as np
import pytest

from unetgui.core.errors import Cancelled
from unetgui.core.geometry import affine_from_dicom, index_transform, spacing_from_affine, voxel_to_world
from unetgui.core.progress import CancelToken
from unetgui.core.volume import Label, LabelMap, LabelTable, Volume


def test_label_table_sorted_unique_and_json_round_trip():
    table = LabelTable((Label(3, "spleen", (1, 2, 3)), Label(1, "liver", (200, 10, 10))))
    assert table.values == (1, 3)
    assert LabelTable.from_json(table.to_json()) == table
    with pytest.raises(ValueError):
        LabelTable((Label(1, "a", (0, 0, 0)), Label(1, "b", (0, 0, 0))))
    with pytest.raises(ValueError):
        Label(255, "reserved", (0, 0, 0))
    assert table.with_label(Label(3, "kidney", (0, 0, 0))).get(3).name == "kidney"


def test_label_codes_round_trip_validate_and_go_with_a_new_name():
    mass = Label(2, "Segment_1", (1, 2, 3), (("category", "SCT", "49755003", "Morphologically Altered Structure"),
                                             ("type", "SCT", "4147007", "Mass")))
    table = LabelTable((mass, Label(1, "liver", (200, 10, 10))))
    assert LabelTable.from_json(table.to_json()) == table and "codes" not in table.to_json()[0]
    assert mass.code("type") == ("SCT", "4147007", "Mass") and mass.code("region") is None
    assert mass.renamed("Segment_1") == mass and mass.renamed("cyst").codes == ()
    with pytest.raises(ValueError, match="category and a type"):
        Label(1, "a", (0, 0, 0), (("type", "SCT", "4147007", "Mass"),))
    with pytest.raises(ValueError, match="distinct"):
        Label(1, "a", (0, 0, 0), (("category", "SCT", "1", "x"), ("category", "SCT", "2", "y")))
    with pytest.raises(ValueError, match="roles"):
        Label(1, "a", (0, 0, 0), (("category", "SCT", "1", "x"), ("kind", "SCT", "2", "y")))
    # a saved table with codes that do not read keeps its labels (coded by name from then on)
    saved = table.to_json()
    saved[1]["codes"] = {"type": ["SCT", "4147007", "Mass"]}
    assert LabelTable.from_json(saved).get(2) == Label(2, "Segment_1", (1, 2, 3))
    saved[1]["codes"] = "garbage"
    assert LabelTable.from_json(saved).get(2).codes == ()


def test_volume_spacing_comes_from_the_affine():
    affine = affine_from_dicom(np.array([1, 0, 0]), np.array([0, 1, 0]), (0.7, 0.8), np.zeros(3), np.array([0, 0, 2.5]))
    volume = Volume(np.zeros((3, 4, 5), np.int16), affine)
    assert volume.spacing == pytest.approx((2.5, 0.7, 0.8))
    # DICOM LPS -> RAS: the first two world axes flip sign
    assert voxel_to_world(affine, [1, 1, 1]) == pytest.approx([-0.8, -0.7, 2.5])


def test_label_map_validates_and_reports_used_values():
    lm = LabelMap(np.zeros((2, 3, 4), np.uint8), np.eye(4))
    lm.labels[0, 0, :2] = 2
    lm.labels[1, 2, 3] = 255
    assert lm.used_values() == (2,)
    with pytest.raises(ValueError):
        LabelMap(np.zeros((2, 3, 4), np.int16), np.eye(4))


def _grid(shape_xyz, spacing, origin, axes=np.eye(3)):
    a = np.eye(4)
    a[:3, :3] = axes * np.asarray(spacing)
    a[:3, 3] = origin
    return a


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2), (2, 0, 1)])
@pytest.mark.parametrize("flips", [(False, False, False), (True, False, True), (False, True, False)])
def test_index_transform_recovers_any_axis_permutation_and_flip(order, flips):
    rng = np.random.default_rng(1)
    dst_shape = (5, 6, 7)
    dst_affine = _grid(dst_shape, (0.8, 0.9, 2.0), (10.0, -20.0, 30.0))
    data = rng.integers(0, 9, dst_shape)
    # build the same grid stored with permuted/flipped axes, as another tool would write it
    src = data
    src_affine = dst_affine.copy()
    for axis, flip in enumerate(flips):
        if flip:
            src = np.flip(src, axis)
            src_affine = src_affine @ np.array(
                [[-1 if i == axis and j == axis else int(i == j) for j in range(4)] for i in range(4)], float)
            src_affine[:3, 3] += dst_affine[:3, axis] * (dst_shape[axis] - 1)
    inverse = np.argsort(order)
    src = src.transpose(inverse)
    perm = np.eye(4)
    perm[:3, :3] = np.eye(3)[:, inverse]
    src_affine = src_affine @ perm
    mapping = index_transform(src_affine, src.shape, dst_affine, dst_shape)
    assert mapping is not None
    got_order, got_flips = mapping
    back = src.transpose(got_order)
    back = np.flip(back, [a for a in range(3) if got_flips[a]]) if any(got_flips) else back
    assert np.array_equal(back, data)


def test_index_transform_refuses_shift_scale_and_extent_changes():
    dst = _grid((10, 10, 10), (1, 1, 2), (0, 0, 0))
    assert index_transform(dst, (10, 10, 10), dst, (10, 10, 10)) == ((0, 1, 2), (False, False, False))
    assert index_transform(_grid(0, (1, 1, 2), (0.5, 0, 0)), (10, 10, 10), dst, (10, 10, 10)) is None  # half voxel
    assert index_transform(_grid(0, (1.01, 1, 2), (0, 0, 0)), (10, 10, 10), dst, (10, 10, 10)) is None  # 1 % scale
    assert index_transform(dst, (10, 10, 9), dst, (10, 10, 10)) is None  # extent
    rot = np.array([[np.cos(0.1), -np.sin(0.1), 0], [np.sin(0.1), np.cos(0.1), 0], [0, 0, 1]])
    assert index_transform(_grid(0, (1, 1, 2), (0, 0, 0), rot), (10, 10, 10), dst, (10, 10, 10)) is None


def test_cancel_token():
    token = CancelToken()
    token.raise_if_set()
    token.set()
    with pytest.raises(Cancelled):
        token.raise_if_set()


def test_spacing_from_affine_order_is_zyx():
    assert spacing_from_affine(_grid(0, (0.5, 0.6, 3.0), (0, 0, 0))) == pytest.approx((3.0, 0.6, 0.5))
