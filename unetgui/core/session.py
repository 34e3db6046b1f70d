"""The Session: the one owner of document state (volume, labels, reviewed slices, undo history).

Widgets draw it and change it only through its methods; it tells listeners what changed through plain
callbacks (no Qt here: a Qt adapter turns them into signals). Only the GUI thread calls its methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from unetgui.core import ranking, tools
from unetgui.core.history import EditHistory, Step, diff_patch
from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable, Volume, default_color


@dataclass
class BrushSettings:
    radius: float = 8.0  # pixels
    erase: bool = False
    threshold: tuple[float, float] | None = None  # paint only where the image lies in [low, high]


@dataclass
class _Stroke:
    name: str
    z: int
    before: np.ndarray
    review_before: bool


@dataclass
class Listeners:
    volume_changed: list[Callable[[], None]] = field(default_factory=list)
    labels_changed: list[Callable[[tuple[int, ...]], None]] = field(default_factory=list)  # slices
    table_changed: list[Callable[[], None]] = field(default_factory=list)
    reviewed_changed: list[Callable[[], None]] = field(default_factory=list)
    slice_changed: list[Callable[[int], None]] = field(default_factory=list)
    history_changed: list[Callable[[], None]] = field(default_factory=list)
    committed: list[Callable[[], None]] = field(default_factory=list)  # a final change without an undo step
    uncertainty_changed: list[Callable[[], None]] = field(default_factory=list)
    closed: list[Callable[[], None]] = field(default_factory=list)


class Session:
    """Document state of one open image and its labels."""

    def __init__(self, history_bytes: int = 64 * 2**20) -> None:
        self.volume: Volume | None = None
        self.labels: LabelMap | None = None
        self.reviewed = np.zeros(0, bool)
        self.test = np.zeros(0, bool)  # reviewed slices kept out of training, to evaluate the model on
        self.uncertainty: np.ndarray | None = None  # (z, y, x) uint8 of the last segmentation (not saved)
        self.slice_scores = np.zeros(0)  # per slice, NaN where not segmented (core.ranking.slice_scores)
        self.current_slice = 0
        self.active_label = 1
        self.history = EditHistory(history_bytes)
        self.listeners = Listeners()
        self._stroke: _Stroke | None = None
        self.generation = 0  # counts opens: background results for an older document are dropped

    # -- notifications ---------------------------------------------------------------------------
    def _emit(self, name: str, *args) -> None:
        for callback in list(getattr(self.listeners, name)):
            callback(*args)

    # -- document --------------------------------------------------------------------------------
    def open(self, volume: Volume, labels: LabelMap | None = None, table: LabelTable | None = None,
             reviewed: np.ndarray | None = None, test: np.ndarray | None = None) -> None:
        """Show ``volume`` with ``labels`` (or empty labels), ``reviewed`` and ``test`` flags; clears the undo history."""
        if labels is not None and not labels.fits(volume):
            raise ValueError("the labels are not on the volume's grid")
        default = table or (labels.table if labels is not None and len(labels.table) else LabelTable.from_names("Label 1"))
        self.volume = volume
        self.labels = labels if labels is not None else LabelMap.empty_like(volume, default)
        if not len(self.labels.table):
            self.labels.table = default
        self.reviewed = np.zeros(volume.shape[0], bool) if reviewed is None else np.asarray(reviewed, bool).copy()
        self.test = np.zeros(volume.shape[0], bool) if test is None else np.asarray(test, bool).copy()
        self.uncertainty = None
        self.slice_scores = np.full(volume.shape[0], np.nan)
        self.history.clear()
        self._stroke = None
        self.generation += 1
        self.current_slice = volume.shape[0] // 2
        self.active_label = self.labels.table.values[0]
        self._emit("volume_changed")
        self._emit("table_changed")
        self._emit("slice_changed", self.current_slice)
        self._emit("history_changed")

    def close(self) -> None:
        """Show nothing (e.g. an empty project): the document is gone, listeners hear ``closed``."""
        self.volume, self.labels = None, None
        self.reviewed, self.test = np.zeros(0, bool), np.zeros(0, bool)
        self.uncertainty, self.slice_scores = None, np.zeros(0)
        self.history.clear()
        self._stroke = None
        self.generation += 1
        self._emit("closed")
        self._emit("history_changed")

    @property
    def is_open(self) -> bool:
        return self.volume is not None

    @property
    def stroke_open(self) -> bool:
        """A brush drag is in progress (its edits are committed when it ends)."""
        return self._stroke is not None

    @property
    def table(self) -> LabelTable:
        return self.labels.table if self.labels is not None else LabelTable()

    def set_slice(self, z: int) -> None:
        if self.volume is None:
            return
        z = int(np.clip(z, 0, self.volume.shape[0] - 1))
        if z != self.current_slice:
            self.current_slice = z
            self._emit("slice_changed", z)

    # -- label table -----------------------------------------------------------------------------
    def set_active_label(self, value: int) -> None:
        if self.table.get(value) is None:
            raise ValueError(f"no label {value}")
        self.active_label = value

    def add_label(self, name: str | None = None) -> Label:
        used = set(self.table.values)
        value = next(v for v in range(1, UNANNOTATED) if v not in used)
        label = Label(value, name or f"Label {value}", default_color(value))
        self.update_label(label)
        return label

    def update_label(self, label: Label) -> None:
        """Add ``label`` or rename / recolour the label with its value."""
        self.labels.table = self.table.with_label(label)
        self._emit("table_changed")

    # -- review flags ----------------------------------------------------------------------------
    def set_reviewed(self, z: int, reviewed: bool = True) -> None:
        if self.reviewed[z] == reviewed:
            return
        self.history.push(Step("review" if reviewed else "unreview", (), ((z, bool(self.reviewed[z])),)))
        self.reviewed[z] = reviewed
        self._emit("reviewed_changed")
        self._emit("history_changed")

    def set_test(self, z: int, test: bool = True) -> None:
        """Keep slice ``z`` out of training to measure the model on it (a test slice is also reviewed)."""
        if self.test[z] == test:
            return
        review = ((z, bool(self.reviewed[z])),) if test and not self.reviewed[z] else ()
        self.history.push(Step("test" if test else "not test", (), review, ((z, bool(self.test[z])),)))
        self.test[z] = test
        if review:
            self.reviewed[z] = True
        self._emit("reviewed_changed")
        self._emit("history_changed")

    # -- strokes ---------------------------------------------------------------------------------
    def begin_stroke(self, name: str = "brush") -> None:
        z = self.current_slice
        self._stroke = _Stroke(name, z, self.labels.labels[z].copy(), bool(self.reviewed[z]))

    def paint_segment(self, y0: float, x0: float, y1: float, x1: float, brush: BrushSettings) -> None:
        """Paint (or erase) along a segment of the current stroke, on the current slice."""
        if self._stroke is None:
            self.begin_stroke("eraser" if brush.erase else "brush")
        z = self._stroke.z
        plane = self.labels.labels[z]
        allowed = None
        if brush.threshold is not None:
            image = self.volume.voxels[z]
            allowed = (image >= brush.threshold[0]) & (image <= brush.threshold[1])
        value, only = (0, self.active_label) if brush.erase else (self.active_label, None)
        touched = False
        for cy, cx in tools.stroke_points(y0, x0, y1, x1, brush.radius):
            touched |= tools.dab(plane, cy, cx, brush.radius, value, allowed, only) is not None
        if touched:
            self._emit("labels_changed", (z,))

    def end_stroke(self) -> Step | None:
        """Close the stroke: one undo step; an edited slice is marked reviewed."""
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return None
        return self._commit(stroke.name, {stroke.z: stroke.before}, {stroke.z: stroke.review_before})

    def _commit(self, name: str, befores: dict[int, np.ndarray], review_before: dict[int, bool]) -> Step | None:
        patches = []
        for z, before in befores.items():
            patch = diff_patch(z, before, self.labels.labels[z])
            if patch is not None:
                patches.append(patch)
        if not patches:
            return None
        reviewed = tuple((z, review_before[z]) for z in sorted({p.z for p in patches}))
        for z, _ in reviewed:
            self.reviewed[z] = True
        step = Step(name, tuple(patches), reviewed)
        self.history.push(step)
        self._emit("reviewed_changed")
        self._emit("history_changed")
        return step

    def _replace_slices(self, name: str, new: dict[int, np.ndarray]) -> Step | None:
        befores = {z: self.labels.labels[z].copy() for z in new}
        review = {z: bool(self.reviewed[z]) for z in new}
        for z, plane in new.items():
            self.labels.labels[z] = plane
        self._emit("labels_changed", tuple(new))  # before the commit: listeners (autosave) see the slices first
        return self._commit(name, befores, review)

    # -- slice operations ------------------------------------------------------------------------
    def flood_fill(self, y: int, x: int, tolerance: float | None = None) -> Step | None:
        z = self.current_slice
        image = self.volume.voxels[z] if tolerance is not None else None
        return self._replace_slices("fill", {z: tools.flood_fill(self.labels.labels[z], (y, x), self.active_label, image, tolerance)})

    def fill_holes(self) -> Step | None:
        z = self.current_slice
        return self._replace_slices("fill holes", {z: tools.fill_holes(self.labels.labels[z], self.active_label)})

    def copy_from(self, source_z: int) -> Step | None:
        """Copy the active label of slice ``source_z`` onto the current slice (added to what is there)."""
        z = self.current_slice
        if not 0 <= source_z < self.volume.shape[0] or source_z == z:
            return None
        plane = self.labels.labels[z].copy()
        plane[self.labels.labels[source_z] == self.active_label] = self.active_label
        return self._replace_slices("copy slice", {z: plane})

    def interpolate(self) -> Step | None:
        """Fill the active label in the slices between the nearest annotated slices around the current one."""
        has = np.flatnonzero((self.labels.labels == self.active_label).any(axis=(1, 2)))
        z = self.current_slice
        below, above = has[has < z], has[has > z]
        if z in has:  # from an annotated slice: interpolate towards the next annotated one above, else below
            below, above = has[has <= z], has[has > z]
            if not above.size:
                below, above = has[has < z], has[has >= z]
        if not below.size or not above.size:
            return None
        a, b = int(below.max()), int(above.min())
        if b - a < 2:
            return None
        masks = tools.interpolate(self.labels.labels[a] == self.active_label, self.labels.labels[b] == self.active_label, b - a - 1)
        new = {}
        for k, mask in enumerate(masks, start=a + 1):
            plane = self.labels.labels[k].copy()
            plane[mask & ((plane == 0) | (plane == UNANNOTATED))] = self.active_label
            new[k] = plane
        return self._replace_slices("interpolate", new)

    # -- predictions -----------------------------------------------------------------------------
    def apply_prediction(self, slices: tuple[int, ...] | list[int], labels: np.ndarray,
                         uncertainty: np.ndarray | None = None, scores: np.ndarray | None = None) -> tuple[int, ...]:
        """Write predicted labels ``(n, y, x)`` into ``slices``, skipping reviewed slices (the user's
        corrections are never overwritten); keep the model's ``uncertainty`` ``(n, y, x)`` and slice
        ``scores`` (see core.ranking) for every slice. Returns the slices written."""
        if uncertainty is not None:
            if self.uncertainty is None:
                self.uncertainty = np.zeros(self.volume.shape, np.uint8)
            self.uncertainty[list(slices)] = uncertainty
            if scores is not None:
                self.slice_scores[list(slices)] = scores
            self._emit("uncertainty_changed")
        open_stroke = self._stroke.z if self._stroke is not None else None  # a drag in progress wins
        written = tuple(int(z) for z, _ in zip(slices, labels) if not self.reviewed[z] and z != open_stroke)
        for z, plane in zip(slices, labels):
            if z in written:
                self.labels.labels[z] = plane
        if written:
            self._emit("labels_changed", written)
        return written

    def commit_prediction(self, befores: dict[int, np.ndarray]) -> Step | None:
        """Make a finished segmentation one undo step (``befores``: the slices before it wrote them)."""
        patches = [p for z, before in befores.items() if (p := diff_patch(z, before, self.labels.labels[z]))]
        if not patches:
            return None
        step = Step("segment", tuple(patches))  # no review flags: a prediction is not the user's work
        self.history.push(step)
        self._emit("history_changed")
        return step

    def discard_prediction(self, befores: dict[int, np.ndarray]) -> tuple[int, ...]:
        """Take back a segmentation that failed: the slices it wrote get their content back (reviewed
        slices were never written). Autosave is told at once (``committed``), so that a crash after the
        failure cannot bring the partial result back. Returns the slices restored."""
        open_stroke = self._stroke.z if self._stroke is not None else None  # a drag in progress wins
        restored = tuple(int(z) for z in befores if not self.reviewed[z] and z != open_stroke)
        for z in restored:
            self.labels.labels[z] = befores[z]
        if restored:
            self._emit("labels_changed", restored)
            self._emit("committed")
        return restored

    def suggestions(self, count: int | None = None) -> list:
        """Unreviewed segmented slices in the order to correct them (core.ranking.rank_slices)."""
        if not self.is_open:
            return []
        return ranking.rank_slices(self.slice_scores, self.reviewed, count)

    def training_labels(self) -> np.ndarray:
        """Labels of the reviewed slices that are not test slices, 255 ("not annotated") elsewhere."""
        keep = self.reviewed & ~self.test
        return np.where(keep[:, None, None], self.labels.labels, np.uint8(UNANNOTATED)).astype(np.uint8)

    # -- undo ------------------------------------------------------------------------------------
    def undo(self) -> bool:
        step = self.history.pop_undo()
        if step is None:
            return False
        self._apply(step, undo=True)
        return True

    def redo(self) -> bool:
        step = self.history.pop_redo()
        if step is None:
            return False
        self._apply(step, undo=False)
        return True

    def _apply(self, step: Step, undo: bool) -> None:
        for p in step.patches:
            data = p.before if undo else p.after
            self.labels.labels[p.z, p.y0:p.y0 + data.shape[0], p.x0:p.x0 + data.shape[1]] = data
        for z, before in step.reviewed_before:
            self.reviewed[z] = before if undo else (True if step.patches or step.test_before else not before)
        for z, before in step.test_before:
            self.test[z] = before if undo else not before
        if step.patches:
            self._emit("labels_changed", step.slices)
        if step.name == "segment" and step.patches:  # the uncertainty belonged to that prediction
            self.slice_scores[list(step.slices)] = np.nan
            self._emit("uncertainty_changed")
        self._emit("reviewed_changed")
        self._emit("history_changed")
