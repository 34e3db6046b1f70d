"""Undo/redo of label edits as bounded diffs: one step per stroke, only the changed boxes, capped by bytes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Patch:
    """The box ``[y0:y0+h, x0:x0+w]`` of slice ``z`` before and after an edit."""

    z: int
    y0: int
    x0: int
    before: np.ndarray
    after: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes


@dataclass(frozen=True)
class Step:
    """One undoable user action (a brush stroke, a fill, an interpolation...)."""

    name: str
    patches: tuple[Patch, ...]
    reviewed_before: tuple[tuple[int, bool], ...] = ()  # slice review flags the action changed
    test_before: tuple[tuple[int, bool], ...] = ()  # test-slice flags the action changed

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.patches)

    @property
    def slices(self) -> tuple[int, ...]:
        return tuple(sorted({p.z for p in self.patches}))


def diff_patch(z: int, before: np.ndarray, after: np.ndarray) -> Patch | None:
    """The smallest box of slice ``z`` where ``before`` and ``after`` (2-D) differ, or None."""
    changed = before != after
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if rows.size == 0:
        return None
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return Patch(z, int(y0), int(x0), before[y0:y1, x0:x1].copy(), after[y0:y1, x0:x1].copy())


class EditHistory:
    """Undo and redo stacks of :class:`Step`; the oldest steps are dropped beyond ``max_bytes``."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._undo: deque[Step] = deque()
        self._redo: list[Step] = []
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes + sum(s.nbytes for s in self._redo)

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def push(self, step: Step) -> None:
        if not step.patches and not step.reviewed_before and not step.test_before:
            return
        self._undo.append(step)
        self._bytes += step.nbytes
        self._redo.clear()
        while self._bytes > self.max_bytes and len(self._undo) > 1:
            self._bytes -= self._undo.popleft().nbytes

    def pop_undo(self) -> Step | None:
        if not self._undo:
            return None
        step = self._undo.pop()
        self._bytes -= step.nbytes
        self._redo.append(step)
        return step

    def pop_redo(self) -> Step | None:
        if not self._redo:
            return None
        step = self._redo.pop()
        self._undo.append(step)
        self._bytes += step.nbytes
        return step

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._bytes = 0
