"""Undo/redo of label edits as bounded diffs: one step per stroke, only the changed boxes, capped by bytes.

A patch is a 3-D box of the label volume ``(z, y, x)``: one slice thick for an edit in an axial plane, one
row (coronal) or one column (sagittal) thick for an edit in the other planes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Patch:
    """The box ``[z:z+d, y0:y0+h, x0:x0+w]`` of the label volume before and after an edit (3-D arrays), and
    of the annotation mask (the voxels the user's strokes annotated) when the edit recorded it."""

    z: int
    y0: int
    x0: int
    before: np.ndarray
    after: np.ndarray
    annotated_before: np.ndarray | None = None
    annotated_after: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        extra = 0 if self.annotated_before is None else self.annotated_before.nbytes + self.annotated_after.nbytes
        return self.before.nbytes + self.after.nbytes + extra

    @property
    def box(self) -> tuple[slice, slice, slice]:
        d, h, w = self.before.shape
        return slice(self.z, self.z + d), slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    @property
    def slices(self) -> range:
        return range(self.z, self.z + self.before.shape[0])


@dataclass(frozen=True)
class Step:
    """One undoable user action (a brush stroke, a fill, an interpolation...)."""

    name: str
    patches: tuple[Patch, ...]
    reviewed_before: tuple[tuple[int, bool], ...] = ()  # axial slice review flags the action changed
    test_before: tuple[tuple[int, bool], ...] = ()  # test-slice flags the action changed
    planes_before: tuple[tuple[int, int, bool], ...] = ()  # (axis 1 or 2, index, flag): coronal/sagittal reviews

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.patches)

    @property
    def slices(self) -> tuple[int, ...]:
        """The axial slices the patches cross."""
        return tuple(sorted({z for p in self.patches for z in p.slices}))

    @property
    def box(self) -> tuple[slice, slice, slice] | None:
        """The box holding every patch (None without patches)."""
        if not self.patches:
            return None
        boxes = [p.box for p in self.patches]
        return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))


def plane_patch(axis: int, index: int, before: np.ndarray, after: np.ndarray,
                marks_before: np.ndarray | None = None, marks_after: np.ndarray | None = None) -> Patch | None:
    """The smallest box where plane ``index`` along ``axis`` (0 axial: ``(y, x)``, 1 coronal: ``(z, x)``,
    2 sagittal: ``(z, y)``) differs between ``before`` and ``after`` (2-D labels) or between ``marks_before``
    and ``marks_after`` (2-D annotation masks, when given), as a 3-D patch; or None."""
    changed = before != after
    if marks_before is not None:
        changed |= marks_before != marks_after
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if rows.size == 0:
        return None
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    pairs = [before, after] + ([marks_before, marks_after] if marks_before is not None else [])
    boxes = [p[r0:r1, c0:c1].copy() for p in pairs]
    if axis == 0:
        boxes = [b[None] for b in boxes]
        origin = (index, r0, c0)
    elif axis == 1:
        boxes = [b[:, None, :] for b in boxes]
        origin = (r0, index, c0)
    else:
        boxes = [b[:, :, None] for b in boxes]
        origin = (r0, c0, index)
    return Patch(*origin, *boxes)


def diff_patch(z: int, before: np.ndarray, after: np.ndarray) -> Patch | None:
    """The smallest box of axial slice ``z`` where ``before`` and ``after`` (2-D) differ, or None."""
    return plane_patch(0, z, before, after)


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
        if not step.patches and not step.reviewed_before and not step.test_before and not step.planes_before:
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
