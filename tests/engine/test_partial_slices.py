"""Slices annotated by strokes only (issue 26): they train, never validate, do not count as annotated slices
for the planner's few-slice rules, and their patches land on their annotated voxels."""

from __future__ import annotations

import numpy as np

from unetgui.core.volume import UNANNOTATED
from unetgui.engine.data import PatchSampler, prepare_case, slice_folds, split
from unetgui.engine.planner import fingerprint
from unetgui.engine.preprocessing import Preprocessing


def _labels() -> np.ndarray:
    labels = np.full((12, 64, 64), UNANNOTATED, np.uint8)
    for z in (2, 5, 8):  # complete slices
        labels[z] = 0
        labels[z, 20:40, 20:40] = 1
    for z in (3, 4, 6, 9, 10):  # strokes: a few voxels of foreground and background
        labels[z, 50:53, 50:53] = 0
        labels[z, 30:32, 30:34] = 1
    return labels


def _case():
    image = np.random.default_rng(0).normal(0, 1, (12, 64, 64)).astype(np.float32)
    return prepare_case("c", image, _labels(), Preprocessing.for_modality("OT", None).fit_statistics([image], [_labels()]))


def test_partial_slices_train_but_never_validate():
    case = _case()
    assert case.partial == (3, 4, 6, 9, 10) and case.complete == (2, 5, 8)
    train, val = split([case], val_fraction=1 / 3, holdout_min=3)
    assert val and all(z in case.complete for _, z in val)
    assert {z for _, z in train} == set(case.annotated) - {z for _, z in val}
    train, val = split([case], holdout_min=4)  # 3 complete slices < 4: all train, none validates
    assert val == [] and len(train) == 8
    for train, val in slice_folds([case], 3):
        assert {z for _, z in val} <= set(case.complete) and set(case.partial) <= {z for _, z in train}


def test_patches_of_partial_slices_hold_annotated_voxels():
    case = _case()
    sampler = PatchSampler([case], [(0, 3)], patch=16, context=0, foreground_fraction=0.0, seed=1)
    _, labels = sampler.batch(32)
    assert ((labels != UNANNOTATED).sum(axis=(1, 2)) > 0).all()  # no patch without loss


def test_the_planner_counts_complete_slices_only():
    image = np.zeros((12, 64, 64), np.float32)
    fp = fingerprint([image], [_labels()], "CT")
    assert fp.annotated == (3,)
    assert 0.05 < fp.fractions[1] < 0.15  # the structure's share of a complete slice, not of a stroke


def test_the_resident_sampler_centres_patches_of_partial_slices_on_their_strokes_too():
    import torch

    from unetgui.engine.resident import ResidentSampler

    case = _case()
    sampler = ResidentSampler([case], [(0, 3), (0, 9)], (16, 16), 0, 0.0, 1, torch.device("cpu"))
    _, labels = sampler.batch(32)
    assert ((labels != UNANNOTATED).sum(dim=(1, 2)) > 0).all()
    full = ResidentSampler([case], [(0, 2)], (16, 16), 0, 0.0, 1, torch.device("cpu"))  # complete: anywhere
    assert full.batch(8)[1].shape == (8, 16, 16)


def test_several_volumes_validate_on_complete_slices_only():
    """A project whose other series holds strokes only: it never validates (nor takes the complete slices'
    volume out of training)."""
    strokes = _labels()
    strokes[[2, 5, 8]] = UNANNOTATED  # the second volume: strokes only
    image = np.zeros((12, 64, 64), np.float32)
    pre = Preprocessing.for_modality("OT", None).fit_statistics([image], [strokes])
    cases = [_case(), prepare_case("strokes", image, strokes, pre), _case()]
    for seed in range(6):
        train, val = split(cases, holdout_min=3, seed=seed)
        assert val and all(z in cases[c].complete for c, z in val)
        assert {c for c, _ in train} >= {1} and any(z in cases[c].complete for c, z in train)
    train, val = split(cases[:2], holdout_min=3)  # one volume with complete slices: split within it
    assert {c for c, _ in val} == {0} and {(1, z) for z in cases[1].partial} <= set(train)


def test_a_partial_slice_whose_strokes_vanish_at_the_working_size_samples_anywhere():
    import torch

    from unetgui.engine.data import Case
    from unetgui.engine.resident import ResidentSampler

    case = _case()
    labels = np.asarray(case.labels).copy()
    labels[3] = UNANNOTATED  # the stroke of slice 3 was thinner than a pixel of the working size
    thin = Case(case.name, case.image, labels, case.annotated, None, case.partial)
    sampler = ResidentSampler([thin], [(0, 2), (0, 3)], (16, 16), 0, 0.0, 1, torch.device("cpu"))
    assert sampler.batch(16)[1].shape == (16, 16, 16)  # no run of no voxels indexed


def test_a_search_cross_validates_on_complete_slices_with_strokes_beside_them():
    from unetgui.engine.data import slice_folds

    case = _case()  # 3 complete slices, 5 with strokes
    folds = slice_folds([case], 3)
    assert len(folds) == 3 and all(set(case.partial) <= {z for _, z in t} for t, _ in folds)
