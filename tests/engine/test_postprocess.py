"""Post-processing of whole volumes (engine/postprocess.py): objects linked across thick slices by the slice
spacing, the largest-object rule, and the rule that keeps only what reaches the user's annotation."""

from __future__ import annotations

import numpy as np

from unetgui.engine import postprocess

THICK = (7.5, 0.8, 0.8)  # (z, y, x) mm: 7.5 mm slices, 0.8 mm pixels


def oblique_tube(shape=(9, 96, 96), step=6, radius=2.0, y0=20.0) -> np.ndarray:
    """A thin structure (~3 mm across) running obliquely through thick slices: it moves ``step`` px (4.8 mm)
    in-plane from one slice to the next, so its cross-sections on neighbouring slices do not overlap."""
    zz, yy, xx = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    return (np.hypot(yy - (y0 + step * zz), xx - 30) <= radius).astype(np.uint8)


def test_link_radius_follows_the_slice_spacing():
    assert postprocess.link_radius(None) == 0
    assert postprocess.link_radius((1.0, 1.0, 1.0)) == 0  # isotropic: face connectivity
    assert postprocess.link_radius((1.0, 0.8, 0.8)) == 0  # near-isotropic
    assert postprocess.link_radius((1.25, 0.8, 0.8)) == 2
    assert postprocess.link_radius(THICK) == 10  # 7.5 mm in 0.8 mm pixels
    assert postprocess.link_radius((40.0, 1.0, 1.0)) == postprocess.MAX_LINK_MM  # capped
    assert postprocess.link_radius((float("nan"), 1.0, 1.0)) == 0


def test_a_structure_on_thick_slices_is_one_object_and_keeps_every_slice():
    tube = oblique_tube()
    assert postprocess.objects(tube > 0, 0)[1] == tube.shape[0]  # face connectivity: one object per slice
    assert postprocess.objects(tube > 0, postprocess.link_radius(THICK))[1] == 1
    kept = postprocess.largest_component(tube, [1], postprocess.link_radius(THICK))
    assert np.array_equal(kept, tube)
    # the old rule (face connectivity) deleted the structure on all slices but one
    assert postprocess.largest_component(tube, [1], 0).any(axis=(1, 2)).sum() == 1


def test_an_island_far_from_the_structure_is_removed_on_thick_slices():
    labels = oblique_tube()
    labels[4, 80:84, 80:84] = 1  # 16 px, > 10 mm in-plane from the tube on every slice
    kept = postprocess.apply(labels, {"largest_component": [1], "linked": True}, THICK)
    assert np.array_equal(kept, oblique_tube())
    # a model file decided by face connectivity (no "linked": older files) is applied as it was decided
    old = postprocess.apply(labels, {"largest_component": [1]}, THICK)
    assert old.any(axis=(1, 2)).sum() == 1


def test_decide_adopts_the_largest_object_on_thick_slices_only_with_the_spacing():
    truth = oblique_tube()
    predicted = truth.copy()
    predicted[4, 80:84, 80:84] = 1  # a false positive on an annotated slice
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[[2, 6]] = truth[[2, 6]]
    sparse[4] = truth[4]
    with_spacing = postprocess.decide([predicted], [sparse], [1], [THICK])
    assert with_spacing["largest_component"] == [1] and with_spacing["link_radius_px"] == 10 and with_spacing["linked"]
    # by face connectivity the largest object is one slice's cross-section: the annotated slices say no
    assert postprocess.decide([predicted], [sparse], [1])["largest_component"] == []


def lesion_volume():
    """A lesion on slices 8-12 of 20 thick slices, and a larger lesion-like false positive at each end."""
    labels = np.zeros((20, 64, 64), np.uint8)
    for z in range(8, 13):
        labels[z, 28:36, 28:36] = 1
    truth = labels.copy()
    labels[0:3, 5:20, 40:60] = 1  # 900 voxels at the bottom, 200 in the lesion
    labels[18:20, 45:60, 5:20] = 1
    sparse = np.full(labels.shape, 255, np.uint8)
    sparse[[9, 11]] = truth[[9, 11]]
    return labels, truth, sparse


def test_what_does_not_reach_the_annotated_object_is_removed():
    labels, truth, sparse = lesion_volume()
    record = postprocess.decide([labels], [sparse], [1], [(6.5, 0.9, 0.9)])
    assert record["annotated_object"] == [1]  # the annotated slices show one object
    assert record["largest_component"] == []  # the largest object is a false positive: it would delete the lesion
    cleaned = postprocess.apply(labels, record, (6.5, 0.9, 0.9), sparse)
    assert np.array_equal(cleaned, truth)
    # without the annotation (another volume) only the largest-object rule could apply, and it was not adopted
    assert np.array_equal(postprocess.apply(labels, record, (6.5, 0.9, 0.9)), labels)


def test_several_objects_on_an_annotated_slice_keep_the_others():
    labels, truth, sparse = lesion_volume()
    sparse[9, 50:56, 10:16] = 1  # a second lesion on an annotated slice: several lesions, not one object
    labels[9, 50:56, 10:16] = 1
    record = postprocess.decide([labels], [sparse], [1], [(6.5, 0.9, 0.9)])
    assert record["annotated_object"] == []
    assert np.array_equal(postprocess.apply(labels, record, (6.5, 0.9, 0.9), sparse), labels)


def test_a_label_the_user_drew_nowhere_is_left_alone():
    labels, _, sparse = lesion_volume()
    record = {"annotated_object": [1]}
    nothing = np.full(labels.shape, 255, np.uint8)
    assert np.array_equal(postprocess.apply(labels, record, None, nothing), labels)
    assert postprocess.wanted(record) and not postprocess.wanted({"largest_component": [], "annotated_object": []})


def test_a_damaged_record_is_ignored_not_trusted():
    labels, _, sparse = lesion_volume()
    for record in ({"largest_component": ["x", 1e400, True, [1], 2**70], "annotated_object": 1}, ["x"], "x", None):
        assert np.array_equal(postprocess.apply(labels, record, (6.5, 0.9, 0.9), sparse), labels)
        assert not postprocess.wanted(record)
    assert postprocess.link_radius((6.5, 1e-300, 1e-300)) == postprocess.MAX_LINK_PX

