"""The statistics in two steps (the dock's measurement after every stroke): the numbers first, then only the surface
areas of labels whose voxels changed; the result equals a measurement from scratch."""

from __future__ import annotations

import numpy as np
import pytest

from unetgui.core.errors import Cancelled
from unetgui.core.progress import CancelToken
from unetgui.core.volume import Label, LabelMap, LabelTable, Volume
from unetgui.formats import mesh
from unetgui.formats.statistics import csv_text
from unetgui.tasks.stats import SurfaceAreas, document_statistics


def _document():
    """A 40 x 64 x 64 CT-like image on a 0.8 x 0.8 x 2.5 mm grid: a ball (1), a box (2), an empty label (3)."""
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    z, y, x = np.mgrid[:40, :64, :64]
    labels = np.zeros((40, 64, 64), np.uint8)
    labels[((x - 30) * 0.8) ** 2 + ((y - 30) * 0.8) ** 2 + ((z - 20) * 2.5) ** 2 < 18 ** 2] = 1
    labels[5:9, 40:60, 44:60] = 2
    rng = np.random.default_rng(3)
    image = rng.normal(40, 12, labels.shape).astype(np.float32)
    table = LabelTable((Label(1, "Ball", (220, 60, 60)), Label(2, "Box", (60, 120, 230)), Label(3, "Empty", (200, 200, 40))))
    return Volume(image, affine, "CT"), LabelMap(labels, affine, table)


@pytest.fixture
def meshed(monkeypatch):
    """The masks meshed, counted (the real mesh.surface)."""
    shapes, real = [], mesh.surface

    def counting(mask, *args, **kwargs):
        shapes.append(np.count_nonzero(mask))
        return real(mask, *args, **kwargs)

    monkeypatch.setattr(mesh, "surface", counting)
    return shapes


def test_the_numbers_come_first_then_the_areas_and_equal_a_measurement_from_scratch(meshed):
    volume, labels = _document()
    scratch = document_statistics(volume, labels)
    assert len(meshed) == 2  # the ball and the box (an empty label's area is 0 without a mesh)
    meshed.clear()
    areas, first = SurfaceAreas(), []
    result = document_statistics(volume, labels, areas=areas, emit=first.append)
    (numbers,) = first
    assert [s.surface_mm2 for s in numbers] == [None, None, 0.0]  # not measured yet
    assert [s.voxels for s in numbers] == [s.voxels for s in scratch]
    assert [s.mean for s in numbers] == [s.mean for s in scratch]
    assert csv_text(result) == csv_text(scratch)
    assert meshed == sorted(meshed)  # the smallest label first: its area shows soonest

    # a stroke on the box: only the box is meshed again; the ball's area is remembered
    labels.labels[10, 40:50, 44:50] = 2
    meshed.clear()
    first.clear()
    again = document_statistics(volume, labels, areas=areas, emit=first.append)
    assert meshed == [np.count_nonzero(labels.labels == 2)]
    assert [s.surface_mm2 is None for s in first[0]] == [False, True, False]
    assert csv_text(again) == csv_text(document_statistics(volume, labels))

    # nothing changed: every area known, nothing emitted, nothing meshed
    meshed.clear()
    first.clear()
    document_statistics(volume, labels, areas=areas, emit=first.append)
    assert meshed == [] and first == []


def test_the_area_does_not_depend_on_where_the_mask_lies_but_on_the_grid():
    volume, labels = _document()
    areas = SurfaceAreas()
    document_statistics(volume, labels, areas=areas)
    moved = labels.labels.copy()
    moved[5:9, 40:60, 44:60] = 0
    moved[25:29, 2:22, 2:18] = 2  # the same box elsewhere: the same area, known
    shifted = LabelMap(moved, labels.affine, labels.table)
    assert areas.known(moved[25:29, 2:22, 2:18] == 2, labels.affine) is not None
    thicker = np.diag([0.8, 0.8, 3.0, 1.0])  # the same voxels on another grid: another area
    assert areas.known(moved[25:29, 2:22, 2:18] == 2, thicker) is None
    assert csv_text(document_statistics(volume, shifted, areas=areas)) == csv_text(document_statistics(volume, shifted))


def test_a_cancel_between_areas_keeps_those_measured():
    volume, labels = _document()
    areas, token = SurfaceAreas(), CancelToken()

    def cancel_after_the_numbers(numbers):
        token.set()

    with pytest.raises(Cancelled):
        document_statistics(volume, labels, areas=areas, cancel=token, emit=cancel_after_the_numbers)
    first = []
    document_statistics(volume, labels, areas=areas, emit=first.append)
    assert sum(s.surface_mm2 is None for s in first[0]) == 2  # none was measured before the cancel


def test_the_memory_is_bounded():
    areas = SurfaceAreas(capacity=3)
    affine = np.eye(4)
    masks = [np.ones((1, 1, k), bool) for k in range(1, 6)]
    for m in masks:
        areas.measure(m, affine)
    assert [areas.known(m, affine) is not None for m in masks] == [False, False, True, True, True]
    assert areas.known(masks[4], affine) == pytest.approx(mesh.surface(masks[4], affine).area())
