"""How the statistics dock and its Pieces tab write a number: one rule for both tables."""

from __future__ import annotations

import math


def decimals_for(size: float) -> int:
    """2 decimals below 10, 1 below 1000, none above."""
    size = abs(size)
    return 0 if size >= 1000 else 1 if size >= 10 else 2


def number(value: float | None, decimals: int | None = None) -> str:
    """A number as a person reads it: thousands separated, :func:`decimals_for` its size unless given; a dash for
    an undefined one (an empty label has no mean)."""
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    return f"{value:,.{decimals_for(value) if decimals is None else decimals}f}"
