"""Label colours: the first labels differ in hue; a new label gets a hue no other label has."""

from __future__ import annotations

import colorsys
import itertools

from unetgui.core.volume import default_color, distinct_color


def _hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] * 360


def _apart(a, b) -> float:
    d = abs(_hue(a) - _hue(b))
    return min(d, 360 - d)


def test_the_first_eight_label_colours_differ_in_hue():
    first = [default_color(v) for v in range(1, 9)]
    assert min(_apart(a, b) for a, b in itertools.combinations(first, 2)) >= 30
    assert all(max(rgb) >= 200 for rgb in first)  # bright enough to see over a grey image


def test_distinct_color_avoids_the_hues_taken():
    assert distinct_color([]) == default_color(1)
    assert distinct_color([default_color(1)]) == default_color(2)
    near_red = (200, 40, 40)
    picked = distinct_color([near_red, default_color(2)])
    assert _apart(picked, near_red) >= 30 and _apart(picked, default_color(2)) >= 30
    every = [default_color(v) for v in range(1, 13)]
    assert distinct_color(every) in every  # all hues taken: still a palette colour
