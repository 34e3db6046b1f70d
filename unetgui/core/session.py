"""The Session: the one owner of document state (volume, labels, reviewed slices, undo history).

Widgets draw it and change it only through its methods; it tells listeners what changed through plain
callbacks (no Qt here: a Qt adapter turns them into signals). Only the GUI thread calls its methods.

Editing happens in any of the three planes: axis 0 (axial, a slice ``z`` shows ``(y, x)``), 1 (coronal, a
row ``y`` shows ``(z, x)``) and 2 (sagittal, a column ``x`` shows ``(z, y)``). The session's ``axis`` and
``position`` say which plane is shown. Review flags are kept per plane of each axis: a reviewed sagittal
plane marks its voxels as annotated, so the axial slices it crosses are partially annotated
(core.annotation.training_labels: the rest of them stays "not annotated", 255, which training leaves out of the
loss).

Corrective annotation: besides the reviewed planes, ``annotated`` records per voxel what the user's strokes
annotated (a foreground stroke: its voxels hold the label; the background brush: "none of the labels"; the
eraser takes annotation away). With ``review_on_edit`` False (the default, see docs/corrective.md) an edit
annotates only its voxels and the rest of the plane stays the model's prediction, out of training; with it
True, an edit marks its whole plane reviewed (ground truth) as before. Predictions never overwrite annotated
voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from unetgui.core import ranking, tools
from unetgui.core.annotation import annotation_labels, provenance, stroke_slices, training_labels
from unetgui.core.history import EditHistory, Patch, Step, diff_patch, plane_patch
from unetgui.core.volume import UNANNOTATED, Label, LabelMap, LabelTable, Volume, default_color


@dataclass
class BrushSettings:
    radius: float = 8.0  # pixels
    erase: bool = False  # the eraser: removes the active label and the annotation under it
    background: bool = False  # the background brush: annotates "none of the labels" (0)
    threshold: tuple[float, float] | None = None  # paint only where the image lies in [low, high]


AXES = ("axial", "coronal", "sagittal")


def plane_of(array: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2-D plane ``index`` along ``axis`` of a ``(z, y, x)`` array (a view: writing to it writes the array)."""
    return array[(slice(None),) * axis + (index,)]


def _box(axis: int, index: int, r0: int, r1: int, c0: int, c1: int) -> tuple[slice, slice, slice]:
    """The 3-D box of rows ``r0:r1`` and columns ``c0:c1`` of plane ``index`` along ``axis``."""
    if axis == 0:
        return slice(index, index + 1), slice(r0, r1), slice(c0, c1)
    if axis == 1:
        return slice(r0, r1), slice(index, index + 1), slice(c0, c1)
    return slice(r0, r1), slice(c0, c1), slice(index, index + 1)


def _union(a: tuple[slice, ...] | None, b: tuple[slice, ...]) -> tuple[slice, ...]:
    return b if a is None else tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


@dataclass
class _Stroke:
    name: str
    axis: int
    index: int
    before: np.ndarray
    review_before: bool
    annotated_before: np.ndarray


@dataclass
class Listeners:
    volume_changed: list[Callable[[], None]] = field(default_factory=list)
    # (axial slices, box): the box (3 slices z, y, x) holds every change; None: the whole slices changed
    labels_changed: list[Callable[[tuple[int, ...], tuple[slice, slice, slice] | None], None]] = field(default_factory=list)
    table_changed: list[Callable[[], None]] = field(default_factory=list)
    reviewed_changed: list[Callable[[], None]] = field(default_factory=list)
    slice_changed: list[Callable[[int], None]] = field(default_factory=list)  # the shown plane's index
    axis_changed: list[Callable[[int], None]] = field(default_factory=list)  # another plane shown
    # the position moved along an axis (any axis: linked views of the other planes follow)
    position_changed: list[Callable[[int], None]] = field(default_factory=list)
    history_changed: list[Callable[[], None]] = field(default_factory=list)
    committed: list[Callable[[], None]] = field(default_factory=list)  # a final change without an undo step
    uncertainty_changed: list[Callable[[], None]] = field(default_factory=list)
    closed: list[Callable[[], None]] = field(default_factory=list)


class Session:
    """Document state of one open image and its labels."""

    def __init__(self, history_bytes: int = 64 * 2**20) -> None:
        self.volume: Volume | None = None
        self.labels: LabelMap | None = None
        self.reviewed = np.zeros(0, bool)  # per axial slice
        self.reviewed_coronal = np.zeros(0, bool)  # per coronal plane (y)
        self.reviewed_sagittal = np.zeros(0, bool)  # per sagittal plane (x)
        self.test = np.zeros(0, bool)  # reviewed axial slices kept out of training, to evaluate the model on
        # axial slices a segmentation wrote (kept in the project); None: unknown (labels saved before this was kept)
        self.predicted: np.ndarray | None = np.zeros(0, bool)
        self.annotated = np.zeros((0, 0, 0), bool)  # (z, y, x): voxels the user's strokes annotated
        self.review_on_edit = False  # an edit marks its plane reviewed (True) or annotates only its voxels
        self.uncertainty: np.ndarray | None = None  # (z, y, x) uint8 of the last segmentation (not saved)
        self.slice_scores = np.zeros(0)  # per slice, NaN where not segmented (core.ranking.slice_scores)
        self.axis = 0  # the plane shown and edited (AXES)
        self.position = [0, 0, 0]  # the shown plane's index along each axis
        self.active_label = 1
        self.history = EditHistory(history_bytes)
        self.listeners = Listeners()
        self._stroke: _Stroke | None = None
        self._plane_scores: dict[int, np.ndarray] = {}  # coronal / sagittal scores of the last segmentation
        self.generation = 0  # counts opens: background results for an older document are dropped

    # -- notifications ---------------------------------------------------------------------------
    def _emit(self, name: str, *args) -> None:
        for callback in list(getattr(self.listeners, name)):
            callback(*args)

    # -- document --------------------------------------------------------------------------------
    def open(self, volume: Volume, labels: LabelMap | None = None, table: LabelTable | None = None,
             reviewed: np.ndarray | None = None, test: np.ndarray | None = None,
             planes: tuple[np.ndarray, np.ndarray] | None = None, predicted: np.ndarray | None | bool = False,
             annotated: np.ndarray | None = None) -> None:
        """Show ``volume`` with ``labels`` (or empty labels), ``reviewed`` and ``test`` flags, the reviewed
        coronal and sagittal ``planes``, the ``predicted`` slices (False: none; None: unknown) and the voxels
        ``annotated`` by strokes; clears the undo history. Raises ValueError (and changes nothing) when
        something does not fit the volume."""
        z, y, x = volume.shape
        if labels is not None and not labels.fits(volume):
            raise ValueError("the labels are not on the volume's grid")
        if annotated is not None and np.shape(annotated) != (z, y, x):
            raise ValueError("the annotation mask does not fit the volume")
        made = predicted if isinstance(predicted, np.ndarray) else None
        for flags, n in ((reviewed, z), (test, z), (made, z), *(zip(planes, (y, x)) if planes is not None else ())):
            if flags is not None and np.shape(flags) != (n,):
                raise ValueError("the review flags do not fit the volume")
        default = table or (labels.table if labels is not None and len(labels.table) else LabelTable.from_names("Label 1"))
        self.volume = volume
        self.labels = labels if labels is not None else LabelMap.empty_like(volume, default)
        if not len(self.labels.table):
            self.labels.table = default
        self.reviewed = np.zeros(volume.shape[0], bool) if reviewed is None else np.asarray(reviewed, bool).copy()
        self.test = np.zeros(volume.shape[0], bool) if test is None else np.asarray(test, bool).copy()
        self.predicted = (np.zeros(z, bool) if predicted is False else
                          None if predicted is None else np.asarray(predicted, bool).copy())
        self.reviewed_coronal = np.zeros(y, bool) if planes is None else np.asarray(planes[0], bool).copy()
        self.reviewed_sagittal = np.zeros(x, bool) if planes is None else np.asarray(planes[1], bool).copy()
        self.annotated = np.zeros((z, y, x), bool) if annotated is None else np.asarray(annotated, bool).copy()
        self.uncertainty = None
        self._plane_scores.clear()
        self.slice_scores = np.full(volume.shape[0], np.nan)
        self.history.clear()
        self._stroke = None
        self.generation += 1
        self.position = [z // 2, y // 2, x // 2]
        self.active_label = self.labels.table.values[0]
        self._emit("volume_changed")
        self._emit("table_changed")
        self._emit("slice_changed", self.index)
        self._emit("history_changed")

    def close(self) -> None:
        """Show nothing (e.g. an empty project): the document is gone, listeners hear ``closed``."""
        self.volume, self.labels = None, None
        self.reviewed, self.test = np.zeros(0, bool), np.zeros(0, bool)
        self.reviewed_coronal, self.reviewed_sagittal = np.zeros(0, bool), np.zeros(0, bool)
        self.annotated = np.zeros((0, 0, 0), bool)
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

    @property
    def current_slice(self) -> int:
        """The axial slice at the position (the one shown when the axial plane is)."""
        return self.position[0]

    @property
    def index(self) -> int:
        """The shown plane's index along the shown axis."""
        return self.position[self.axis]

    def reviewed_in(self, axis: int) -> np.ndarray:
        """The review flags of the planes along ``axis`` (the array itself)."""
        return (self.reviewed, self.reviewed_coronal, self.reviewed_sagittal)[axis]

    def _crossing(self, axis: int) -> np.ndarray:
        """2-D bool (broadcast) of a plane along ``axis``: its voxels in the reviewed planes of the other axes."""
        rows, cols = (a for a in range(3) if a != axis)
        return self.reviewed_in(rows)[:, None] | self.reviewed_in(cols)[None, :]

    def reviewed_cover(self, axis: int, index: int) -> np.ndarray:
        """2-D bool of plane ``index`` along ``axis``: its voxels in reviewed planes (all of them when the plane
        itself is reviewed, else those of the reviewed planes of the other axes crossing it)."""
        shape = plane_of(self.annotated, axis, index).shape
        if self.reviewed_in(axis)[index]:
            return np.ones(shape, bool)
        return np.broadcast_to(self._crossing(axis), shape)

    def stroked_planes(self, axis: int, planes=None, known: np.ndarray | None = None) -> np.ndarray:
        """Per plane along ``axis``: some voxel annotated by a stroke outside the reviewed planes of the other
        axes (what the slider shows as "strokes"). With ``planes`` (indices) and ``known`` (the previous
        answer), only those planes are read again."""
        n = self.annotated.shape[axis] if self.annotated.ndim == 3 else 0
        partly = planes is not None and known is not None and known.shape == (n,)
        out = known.copy() if partly else np.zeros(n, bool)
        todo = [int(k) for k in planes if 0 <= k < n] if partly else np.flatnonzero(stroke_slices(self.annotated, axis))
        crossing = self._crossing(axis)
        for k in todo:
            out[k] = bool((plane_of(self.annotated, axis, int(k)) & ~crossing).any())
        return out

    def truth_plane(self, axis: int, index: int) -> np.ndarray:
        """2-D bool of plane ``index`` along ``axis``: the voxels that are the user's annotation (strokes and
        :meth:`reviewed_cover`); the rest shows the prediction."""
        return plane_of(self.annotated, axis, index) | self.reviewed_cover(axis, index)

    def plane(self, array: np.ndarray, index: int | None = None) -> np.ndarray:
        """The shown plane (or plane ``index`` along the shown axis) of a ``(z, y, x)`` array."""
        return plane_of(array, self.axis, self.index if index is None else index)

    def set_axis(self, axis: int) -> None:
        """Show (and edit) the planes along ``axis`` (0 axial, 1 coronal, 2 sagittal)."""
        if axis not in (0, 1, 2):
            raise ValueError(f"no axis {axis}")
        if axis != self.axis:
            self.axis = axis
            self._emit("axis_changed", axis)
            if self.is_open:
                self._emit("slice_changed", self.index)

    def set_view(self, axis: int, position) -> None:
        """Show the planes along ``axis`` at ``position`` (an index per axis, clipped to the volume)."""
        if self.volume is None:
            return
        old, self.position = self.position, [int(np.clip(int(v), 0, n - 1)) for v, n in zip(position, self.volume.shape)]
        for k in range(3):
            if old[k] != self.position[k]:
                self._emit("position_changed", k)
        if axis != self.axis:
            self.set_axis(axis)
        else:
            self._emit("slice_changed", self.index)

    def set_slice(self, z: int) -> None:
        """Go to axial slice ``z`` (shown when the axial plane is)."""
        self._set_position(0, z)

    def set_index(self, index: int) -> None:
        """Go to plane ``index`` along the shown axis."""
        self._set_position(self.axis, index)

    def set_position(self, zyx) -> None:
        """Move the position (the crosshair of linked views) to voxel ``zyx``; the shown axis stays."""
        if self.volume is not None:
            self.set_view(self.axis, zyx)

    def _set_position(self, axis: int, index: int) -> None:
        if self.volume is None:
            return
        index = int(np.clip(index, 0, self.volume.shape[axis] - 1))
        if index != self.position[axis]:
            self.position[axis] = index
            self._emit("position_changed", axis)
            if axis == self.axis:
                self._emit("slice_changed", index)

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
    def set_reviewed(self, index: int, reviewed: bool = True, axis: int = 0) -> None:
        """Mark plane ``index`` along ``axis`` (default: the axial slice ``index``) reviewed or not."""
        flags = self.reviewed_in(axis)
        if flags[index] == reviewed:
            return
        name = "review" if reviewed else "unreview"
        before = bool(flags[index])
        self.history.push(Step(name, (), ((index, before),)) if axis == 0 else Step(name, (), planes_before=((axis, index, before),)))
        flags[index] = reviewed
        self._emit("reviewed_changed")
        self._emit("history_changed")

    def set_review_on_edit(self, review: bool) -> None:
        """Whether an edit marks its plane reviewed (True) or annotates only the voxels it changed (False)."""
        if bool(review) != self.review_on_edit:
            self.review_on_edit = bool(review)
            self._emit("reviewed_changed")

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
        """Start a stroke in the shown plane."""
        axis, index = self.axis, self.index
        self._stroke = _Stroke(name, axis, index, plane_of(self.labels.labels, axis, index).copy(),
                               bool(self.reviewed_in(axis)[index]), plane_of(self.annotated, axis, index).copy())

    def paint_segment(self, r0: float, c0: float, r1: float, c1: float, brush: BrushSettings) -> None:
        """Paint (or erase) along a segment of the current stroke, in (row, column) of the stroke's plane
        (an axial slice's rows are y and columns x; coronal: z and x; sagittal: z and y). The brush annotates
        the voxels it paints (with the active label, or with background for the background brush); the eraser
        removes the active label and takes the annotation away."""
        if self._stroke is None:
            self.begin_stroke("eraser" if brush.erase else "background" if brush.background else "brush")
        axis, index = self._stroke.axis, self._stroke.index
        plane = plane_of(self.labels.labels, axis, index)
        marks = plane_of(self.annotated, axis, index)
        allowed = None
        if brush.threshold is not None:
            image = plane_of(self.volume.voxels, axis, index)
            allowed = (image >= brush.threshold[0]) & (image <= brush.threshold[1])
        value, only = ((0, self.active_label) if brush.erase else (0, None) if brush.background
                       else (self.active_label, None))
        box = None
        for cy, cx in tools.stroke_points(r0, c0, r1, c1, brush.radius):
            touched = tools.dab(plane, cy, cx, brush.radius, value, allowed, only, marks, not brush.erase)
            if touched is not None:
                box = _union(box, _box(axis, index, *touched))
        if box is not None:
            self._emit("labels_changed", tuple(range(box[0].start, box[0].stop)), box)

    def end_stroke(self) -> Step | None:
        """Close the stroke: one undo step; with ``review_on_edit`` (or for "nothing here") the edited plane is
        marked reviewed."""
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return None
        patch = plane_patch(stroke.axis, stroke.index, stroke.before, plane_of(self.labels.labels, stroke.axis, stroke.index),
                            stroke.annotated_before, plane_of(self.annotated, stroke.axis, stroke.index))
        return self._commit(stroke.name, stroke.axis, {stroke.index: patch}, {stroke.index: stroke.review_before})

    def _commit(self, name: str, axis: int, patches: dict[int, Patch | None], review_before: dict[int, bool],
                review: bool | None = None) -> Step | None:
        """One undo step of the planes along ``axis`` that changed (``patches`` by plane index); each is
        marked reviewed when ``review`` (default: ``review_on_edit``)."""
        changed = {k: p for k, p in patches.items() if p is not None}
        if not changed:
            return None
        review = self.review_on_edit if review is None else review
        flags = self.reviewed_in(axis)
        before = tuple((k, review_before[k]) for k in sorted(changed)) if review else ()
        for k, _ in before:
            flags[k] = True
        step = (Step(name, tuple(changed.values()), before) if axis == 0 else
                Step(name, tuple(changed.values()), planes_before=tuple((axis, k, b) for k, b in before)))
        self.history.push(step)
        self._emit("reviewed_changed")
        self._emit("history_changed")
        return step

    def _replace_planes(self, name: str, new: dict[int, np.ndarray], review: bool | None = None) -> Step | None:
        """Replace planes (by index along the shown axis) as one undo step; the voxels that change become
        annotated (the user's edit)."""
        axis, labels = self.axis, self.labels.labels
        marks = {k: plane_of(self.annotated, axis, k) for k in new}
        after_marks = {k: marks[k] | (plane_of(labels, axis, k) != plane) for k, plane in new.items()}
        patches = {k: plane_patch(axis, k, plane_of(labels, axis, k), plane, marks[k], after_marks[k])
                   for k, plane in new.items()}
        review_before = {k: bool(self.reviewed_in(axis)[k]) for k in new}
        box = None
        for k, plane in new.items():
            plane_of(labels, axis, k)[...] = plane
            marks[k][...] = after_marks[k]
            if patches[k] is not None:
                box = _union(box, patches[k].box)
        if box is not None:  # before the commit: listeners (autosave) see the change first
            self._emit("labels_changed", tuple(range(box[0].start, box[0].stop)), box)
        return self._commit(name, axis, patches, review_before, review)

    # -- plane operations (in the shown plane) ---------------------------------------------------
    def mark_empty(self) -> Step | None:
        """"Nothing here": the shown plane becomes background everywhere and reviewed, as one undo step. A
        reviewed plane without the structure tells training what the structure is not (e.g. the slices at the
        ends of a volume where a model trained on a few lesion slices paints lesion-like tissue)."""
        step = self._replace_planes("nothing here", {self.index: np.zeros_like(self.plane(self.labels.labels))}, True)
        if step is None:  # already empty: only the review flag changes
            self.set_reviewed(self.index, True, self.axis)
        return step

    def empty_reviewed(self, axis: int, planes=None, known: np.ndarray | None = None) -> np.ndarray:
        """Per plane along ``axis``: reviewed and without any label (the user said "nothing here"). With
        ``planes`` (indices) and ``known`` (the previous answer), only those planes are read again."""
        flags = self.reviewed_in(axis)
        partly = planes is not None and known is not None and known.shape == flags.shape
        out = known & flags if partly else np.zeros(flags.shape, bool)
        labels = self.labels.labels
        todo = [k for k in planes if 0 <= k < flags.size and flags[k]] if partly else np.flatnonzero(flags)
        for k in todo:
            plane = plane_of(labels, axis, int(k))
            out[k] = not ((plane > 0) & (plane != UNANNOTATED)).any()
        return out

    def flood_fill(self, row: int, col: int, tolerance: float | None = None) -> Step | None:
        """Fill the region of the shown plane around (row, col) with the active label."""
        image = self.plane(self.volume.voxels) if tolerance is not None else None
        filled = tools.flood_fill(self.plane(self.labels.labels), (row, col), self.active_label, image, tolerance)
        return self._replace_planes("fill", {self.index: filled})

    def fill_holes(self) -> Step | None:
        return self._replace_planes("fill holes", {self.index: tools.fill_holes(self.plane(self.labels.labels), self.active_label)})

    def copy_from(self, source: int) -> Step | None:
        """Copy the active label of plane ``source`` (along the shown axis) onto the shown plane (added to
        what is there)."""
        if not 0 <= source < self.volume.shape[self.axis] or source == self.index:
            return None
        plane = self.plane(self.labels.labels).copy()
        plane[self.plane(self.labels.labels, source) == self.active_label] = self.active_label
        return self._replace_planes("copy slice", {self.index: plane})

    def interpolate(self) -> Step | None:
        """Fill the active label in the planes between the nearest annotated planes around the shown one
        (along the shown axis)."""
        others = tuple(a for a in range(3) if a != self.axis)
        has = np.flatnonzero((self.labels.labels == self.active_label).any(axis=others))
        k = self.index
        below, above = has[has < k], has[has > k]
        if k in has:  # from an annotated plane: interpolate towards the next annotated one above, else below
            below, above = has[has <= k], has[has > k]
            if not above.size:
                below, above = has[has < k], has[has >= k]
        if not below.size or not above.size:
            return None
        a, b = int(below.max()), int(above.min())
        if b - a < 2:
            return None
        labels = self.labels.labels
        masks = tools.interpolate(self.plane(labels, a) == self.active_label, self.plane(labels, b) == self.active_label, b - a - 1)
        new = {}
        for i, mask in enumerate(masks, start=a + 1):
            plane = self.plane(labels, i).copy()
            plane[mask & ((plane == 0) | (plane == UNANNOTATED))] = self.active_label
            new[i] = plane
        return self._replace_planes("interpolate", new)

    # -- predictions -----------------------------------------------------------------------------
    def apply_prediction(self, slices: tuple[int, ...] | list[int], labels: np.ndarray,
                         uncertainty: np.ndarray | None = None, scores: np.ndarray | None = None) -> tuple[int, ...]:
        """Write predicted labels ``(n, y, x)`` into ``slices``, skipping reviewed slices (the user's
        corrections are never overwritten); keep the model's ``uncertainty`` ``(n, y, x)`` and slice
        ``scores`` (see core.ranking) for every slice. Returns the slices written."""
        if not len(slices):  # a progress report without slices (a model of coronal or sagittal planes)
            return ()
        if uncertainty is not None:
            if self.uncertainty is None:
                self.uncertainty = np.zeros(self.volume.shape, np.uint8)
            self.uncertainty[list(slices)] = uncertainty
            if scores is not None:
                self.slice_scores[list(slices)] = scores
            self._plane_scores.clear()
            self._emit("uncertainty_changed")
        written = tuple(int(z) for z, _ in zip(slices, labels) if not self.reviewed[z] and z != self._axial_stroke())
        for z, plane in zip(slices, labels):
            if z in written:
                keep = self._kept_voxels(z)
                self.labels.labels[z] = plane if keep is None else np.where(keep, self.labels.labels[z], plane)
        if written:
            if self.predicted is not None:
                self.predicted[list(written)] = True
            self._emit("labels_changed", written, None)
        return written

    def _axial_stroke(self) -> int | None:
        return self._stroke.index if self._stroke is not None and self._stroke.axis == 0 else None

    def _kept_voxels(self, z: int) -> np.ndarray | None:
        """``(y, x)`` bool: what a prediction must not write in axial slice ``z`` (the voxels the user
        annotated, those of reviewed coronal and sagittal planes, and of a drag in progress in one of them);
        None: nothing."""
        coronal, sagittal = self.reviewed_coronal.copy(), self.reviewed_sagittal.copy()
        if self._stroke is not None and self._stroke.axis:
            (coronal if self._stroke.axis == 1 else sagittal)[self._stroke.index] = True
        marks = self.annotated[z]
        some = marks.any()
        if not (coronal.any() or sagittal.any()):
            return marks if some else None
        planes = coronal[:, None] | sagittal[None, :]
        return planes | marks if some else planes

    def commit_prediction(self, befores: dict[int, np.ndarray]) -> Step | None:
        """Make a finished segmentation one undo step (``befores``: the slices before it wrote them). What the
        user edited while it ran is not part of it: slices reviewed since, and the voxels of reviewed coronal and
        sagittal planes (undoing the segmentation must not take a stroke back)."""
        patches = []
        for z, before in befores.items():
            if self.reviewed[z]:
                continue
            current, keep = self.labels.labels[z], self._kept_voxels(z)
            if (p := diff_patch(z, before if keep is None else np.where(keep, current, before), current)) is not None:
                patches.append(p)
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
        restored = tuple(int(z) for z in befores if not self.reviewed[z] and z != self._axial_stroke())
        for z in restored:
            keep = self._kept_voxels(z)
            self.labels.labels[z] = befores[z] if keep is None else np.where(keep, self.labels.labels[z], befores[z])
            if self.predicted is not None:
                self.predicted[z] = False
        if restored:
            self._emit("labels_changed", restored, None)
            self._emit("committed")
        return restored

    def suggestions(self, count: int | None = None, axis: int | None = None) -> list:
        """Unreviewed segmented planes along ``axis`` (default: the shown one) in the order to correct them
        (core.ranking.rank_slices). Coronal and sagittal planes are scored once the whole volume is segmented. A
        plane with strokes counts only the uncertainty its strokes have not answered (see :meth:`_unanswered`)."""
        if not self.is_open:
            return []
        axis = self.axis if axis is None else axis
        if axis == 0:
            return ranking.rank_slices(self._unanswered(0, self.slice_scores), self.reviewed, count)
        if self.uncertainty is None or not np.isfinite(self.slice_scores).all():
            return []
        if axis not in self._plane_scores:
            self._plane_scores[axis] = ranking.slice_scores(np.moveaxis(self.uncertainty, axis, 0),
                                                            np.moveaxis(self.labels.labels, axis, 0))
        return ranking.rank_slices(self._unanswered(axis, self._plane_scores[axis]), self.reviewed_in(axis), count)

    def _unanswered(self, axis: int, scores: np.ndarray) -> np.ndarray:
        """``scores`` of the planes along ``axis``, each plane with strokes scaled by the share of its
        uncertainty that lies outside its annotated voxels (a plane whose unsure parts were all painted over has
        nothing left to ask)."""
        if self.uncertainty is None or not self.annotated.size:
            return scores
        out = scores
        for k in np.flatnonzero(stroke_slices(self.annotated, axis) & np.isfinite(scores)):
            unsure = plane_of(self.uncertainty, axis, int(k)).astype(np.float32)
            total = float(unsure.sum())
            if total > 0:
                out = out.copy() if out is scores else out
                out[k] = scores[k] * (1.0 - float(unsure[plane_of(self.annotated, axis, int(k))].sum()) / total)
        return out

    def provenance(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Per axial slice: edited by the user (reviewed, or crossed by a reviewed coronal or sagittal plane)
        and written by a segmentation (None: unknown); what a DICOM-SEG records as each segment's algorithm type."""
        return provenance(self.reviewed, self.reviewed_coronal, self.reviewed_sagittal, self.predicted, self.annotated)

    def training_labels(self) -> np.ndarray:
        """Labels of the reviewed planes and of the annotated voxels (not of test slices), 255 ("not
        annotated") elsewhere."""
        return training_labels(self.labels.labels, self.reviewed, self.test, self.reviewed_coronal,
                               self.reviewed_sagittal, self.annotated)

    def annotation_labels(self) -> np.ndarray:
        """Everything the user annotated, test slices included, 255 elsewhere (see :func:`annotation_labels`)."""
        return annotation_labels(self.labels.labels, self.reviewed, self.reviewed_coronal, self.reviewed_sagittal,
                                 self.annotated)

    def annotation_counts(self) -> dict[str, int]:
        """What training would learn from: ``reviewed`` planes (of every axis), ``stroked`` axial slices with
        strokes only (not reviewed, not test), and the annotated voxels outside reviewed planes, split into
        ``foreground`` (a label) and ``background``. Reads only the slices with strokes."""
        if not self.is_open:
            return {"reviewed": 0, "stroked": 0, "foreground": 0, "background": 0}
        zs = np.flatnonzero(stroke_slices(self.annotated) & ~self.reviewed & ~self.test)
        crossed = self.reviewed_coronal[None, :, None] | self.reviewed_sagittal[None, None, :]
        strokes = self.annotated[zs] & ~crossed
        labels = self.labels.labels[zs]
        labelled = int(np.count_nonzero(strokes & (labels > 0) & (labels != UNANNOTATED)))
        return {"reviewed": int(self.reviewed.sum() + self.reviewed_coronal.sum() + self.reviewed_sagittal.sum()),
                "stroked": int(strokes.any(axis=(1, 2)).sum()), "foreground": labelled,
                "background": int(np.count_nonzero(strokes)) - labelled}

    @property
    def has_training_data(self) -> bool:
        """Some voxels are reviewed or annotated outside the test slices."""
        return bool((self.reviewed & ~self.test).any() or ((self.reviewed_coronal.any() or self.reviewed_sagittal.any())
                                                            and not self.test.all())
                    or (self.annotated.size and (stroke_slices(self.annotated) & ~self.test).any()))

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
            self.labels.labels[p.box] = p.before if undo else p.after
            if p.annotated_before is not None:
                self.annotated[p.box] = p.annotated_before if undo else p.annotated_after
        for z, before in step.reviewed_before:
            self.reviewed[z] = before if undo else (True if step.patches or step.test_before else not before)
        for axis, k, before in step.planes_before:
            self.reviewed_in(axis)[k] = before if undo else (True if step.patches else not before)
        for z, before in step.test_before:
            self.test[z] = before if undo else not before
        if step.patches:
            self._emit("labels_changed", step.slices, step.box)
        if step.name == "segment" and step.patches:  # the uncertainty belonged to that prediction
            if self.predicted is not None:
                self.predicted[list(step.slices)] = not undo
            self.slice_scores[list(step.slices)] = np.nan
            self._plane_scores.clear()
            self._emit("uncertainty_changed")
        self._emit("reviewed_changed")
        self._emit("history_changed")
