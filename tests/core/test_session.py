"""Session editing in core (no Qt): strokes, eraser, threshold brush, fills, interpolation, undo/redo."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import phantom_hu
from unetgui.core.session import BrushSettings, Session
from unetgui.core.volume import Volume


@pytest.fixture
def session() -> Session:
    s = Session()
    s.open(Volume(phantom_hu((8, 64, 64)), np.eye(4), "CT"))
    return s


def test_a_stroke_paints_exactly_the_disks_along_its_path(session):
    session.set_review_on_edit(True)  # the mode where an edit marks its plane reviewed (see test_corrective)
    z = session.current_slice
    session.begin_stroke()
    session.paint_segment(20, 10, 20, 40, BrushSettings(radius=3))
    step = session.end_stroke()
    painted = session.labels.labels[z] == 1
    yy, xx = np.mgrid[0:64, 0:64]
    distance = np.hypot(yy - 20, np.clip(xx, 10, 40) - xx)  # to the segment y=20, x in [10, 40]
    assert painted[distance <= 2.5].all()  # a solid band: no gaps between dabs
    assert not painted[distance > 3.01].any()  # nothing beyond the brush radius
    assert painted[20, 7] and painted[20, 43] and not painted[20, 44]  # round caps of radius 3
    assert (session.labels.labels[np.arange(8) != z] == 0).all()
    assert session.reviewed[z] and step.slices == (z,)


def test_undo_and_redo_restore_exactly(session):
    session.set_review_on_edit(True)  # the mode where an edit marks its plane reviewed (see test_corrective)
    z = session.current_slice
    original = session.labels.labels.copy()
    session.paint_segment(30, 30, 35, 50, BrushSettings(radius=5))
    session.end_stroke()
    painted = session.labels.labels.copy()
    session.paint_segment(30, 35, 30, 45, BrushSettings(radius=2, erase=True))
    session.end_stroke()
    erased = session.labels.labels.copy()
    assert (erased[z] == 1).sum() < (painted[z] == 1).sum()
    assert session.undo() and np.array_equal(session.labels.labels, painted)
    assert session.undo() and np.array_equal(session.labels.labels, original) and not session.reviewed[z]
    assert not session.undo()
    assert session.redo() and np.array_equal(session.labels.labels, painted) and session.reviewed[z]
    assert session.redo() and np.array_equal(session.labels.labels, erased)
    assert not session.redo()


def test_eraser_removes_only_the_active_label(session):
    z = session.current_slice
    session.add_label("other")
    session.labels.labels[z, 10:20, 10:20] = 2
    session.labels.labels[z, 10:20, 20:30] = 1
    session.paint_segment(15, 5, 15, 35, BrushSettings(radius=4, erase=True))
    session.end_stroke()
    assert (session.labels.labels[z, 10:20, 10:20] == 2).all()
    assert (session.labels.labels[z, 12:19, 20:30] == 0).all()


def test_threshold_brush_paints_only_inside_the_range(session):
    z = session.current_slice
    image = session.volume.voxels[z]
    session.paint_segment(32, 0, 32, 63, BrushSettings(radius=30, threshold=(70, 200)))
    session.end_stroke()
    painted = session.labels.labels[z] == 1
    assert painted.any()
    assert (image[painted] >= 70).all() and (image[painted] <= 200).all()


def test_fill_holes_flood_fill_copy_and_interpolate(session):
    session.set_review_on_edit(True)  # the mode where an edit marks its plane reviewed (see test_corrective)
    z = session.current_slice
    ring = np.zeros((64, 64), np.uint8)
    ring[10:30, 10:30] = 1
    ring[15:25, 15:25] = 0
    session.labels.labels[z] = ring
    session.fill_holes()
    assert (session.labels.labels[z, 10:30, 10:30] == 1).all()
    session.undo()
    assert np.array_equal(session.labels.labels[z], ring)
    session.flood_fill(20, 20)
    assert (session.labels.labels[z, 15:25, 15:25] == 1).all() and session.labels.labels[z, 40, 40] == 0
    session.set_slice(z + 1)
    session.copy_from(z)
    assert np.array_equal(session.labels.labels[z + 1] == 1, session.labels.labels[z] == 1)
    session.labels.labels[:] = 0
    session.labels.labels[1, 20:30, 20:30] = 1
    session.labels.labels[6, 20:40, 20:40] = 1
    session.set_slice(3)
    session.interpolate()
    areas = [(session.labels.labels[k] == 1).sum() for k in range(1, 7)]
    assert areas == sorted(areas) and all(a > 0 for a in areas)
    assert session.reviewed[2:6].all()


def test_undo_history_of_1000_strokes_stays_small():
    s = Session(history_bytes=10**9)
    s.open(Volume(np.zeros((300, 512, 512), np.int16), np.eye(4)))
    rng = np.random.default_rng(0)
    for i in range(1000):
        s.set_slice(int(rng.integers(300)))
        y, x = rng.integers(20, 490, 2)
        s.paint_segment(y, x, y + rng.integers(-20, 20), x + rng.integers(-20, 20), BrushSettings(radius=10))
        s.end_stroke()
    assert s.history.nbytes < 100 * 2**20, f"{s.history.nbytes / 2**20:.1f} MiB"
    assert s.history.can_undo()
    assert s.history.nbytes < 10 * 2**20  # in practice far below the limit: ~a few KB per stroke


def test_history_is_capped_by_bytes():
    s = Session(history_bytes=50_000)
    s.open(Volume(np.zeros((4, 128, 128), np.int16), np.eye(4)))
    for i in range(50):
        s.paint_segment(64, 10, 64, 120, BrushSettings(radius=12))
        s.end_stroke()
        s.paint_segment(64, 10, 64, 120, BrushSettings(radius=12, erase=True))
        s.end_stroke()
    assert s.history.nbytes <= 50_000 + 2 * 128 * 128
    undone = 0
    while s.undo():
        undone += 1
    assert 0 < undone < 100


def test_review_findings_in_core(session):
    session.set_review_on_edit(True)  # the mode where an edit marks its plane reviewed (see test_corrective)
    z = session.current_slice
    # a prediction arriving during a drag does not overwrite the stroke's slice
    session.begin_stroke()
    session.paint_segment(20, 20, 20, 30, BrushSettings(radius=3))
    assert session.apply_prediction([z, z + 1], np.zeros((2, 64, 64), np.uint8) + 1) == (z + 1,)
    session.end_stroke()
    assert session.labels.labels[z, 0, 0] == 0 and session.reviewed[z]
    # test flags are undoable
    session.set_test(z + 2)
    assert session.test[z + 2] and session.reviewed[z + 2]
    session.undo()
    assert not session.test[z + 2] and not session.reviewed[z + 2]
    session.redo()
    assert session.test[z + 2] and session.reviewed[z + 2]
    # a finished prediction is one undo step, so undo never leaves model output marked as the user's
    before = {z + 3: session.labels.labels[z + 3].copy()}
    session.apply_prediction([z + 3], np.full((1, 64, 64), 1, np.uint8))
    session.commit_prediction(before)
    assert session.undo() and not session.labels.labels[z + 3].any() and not session.reviewed[z + 3]
    generation = session.generation
    session.open(session.volume)
    assert session.generation == generation + 1


def test_undoing_a_segmentation_drops_its_uncertainty_scores():
    import numpy as np

    from unetgui.core.session import Session
    from unetgui.core.volume import Volume

    s = Session()
    s.open(Volume(np.zeros((4, 8, 8), np.int16), np.eye(4)))
    befores = {z: s.labels.labels[z].copy() for z in range(4)}
    s.apply_prediction([0, 1, 2, 3], np.ones((4, 8, 8), np.uint8), np.full((4, 8, 8), 200, np.uint8), np.arange(4.0))
    s.commit_prediction(befores)
    assert s.suggestions()[0].slice == 3
    s.undo()
    assert s.suggestions() == []  # nothing predicted on screen any more: nothing to suggest


def test_nothing_here_clears_the_slice_and_marks_it_reviewed_in_one_step(session):
    z = session.current_slice
    session.labels.labels[z, 10:20, 10:20] = 1  # e.g. a model's false positive
    session.labels.labels[z, 0, :] = 255  # not annotated
    before = session.labels.labels.copy()
    session.mark_empty()
    assert not session.labels.labels[z].any() and session.reviewed[z]
    assert session.empty_reviewed(0)[z] and session.empty_reviewed(0).sum() == 1
    session.undo()
    assert np.array_equal(session.labels.labels, before) and not session.reviewed[z]
    session.labels.labels[z] = 0
    session.mark_empty()  # already empty: only the flag changes
    assert session.reviewed[z] and session.empty_reviewed(0)[z]
