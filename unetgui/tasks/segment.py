"""Segment an image with a model: the one segmentation path of the app (streaming into the overlay),
``unetgui predict``, ``unetgui suggest`` and the evaluations.

The one rule for the model's post-processing (engine/postprocess.py): it is 3-D, so it runs when the
predicted slices, together with the slices the user reviewed (kept as drawn), cover the whole volume: a
whole-volume prediction, or re-segmenting every unreviewed slice after training. A subset of slices is
never post-processed. What the user drew (``annotation``) anchors the model's annotated-object rule.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from unetgui.core.errors import UnetguiError
from unetgui.core.progress import CancelToken, ProgressFn, report, run_to_end
from unetgui.core.ranking import rank_slices, slice_scores
from unetgui.core.volume import Volume
from unetgui.engine.config import check_device


@dataclass(frozen=True)
class SegmentRequest:
    """``slices``: axial slices to segment (None: all); ``tta``: average over flipped copies; ``scores``: also
    the per-slice uncertainty scores of the slice ranking (core/ranking.py); ``compile``: torch.compile
    (None: on CUDA; one volume of a command is not worth compiling for); ``threads``: CPU threads (None: all
    cores)."""

    device: str = "auto"
    slices: tuple[int, ...] | None = None
    tta: bool = False
    scores: bool = False
    compile: bool | None = None
    postprocess: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.slices is not None:
            object.__setattr__(self, "slices", tuple(int(z) for z in self.slices))


@dataclass(frozen=True)
class SegmentBatch:
    """Finished slices: label values ``(n, y, x)``; ``uncertainty`` and ``scores`` for the ranking (the last
    batch of post-processed slices has neither)."""

    slices: tuple[int, ...]
    labels: np.ndarray
    uncertainty: np.ndarray | None
    scores: np.ndarray | None
    done: int
    total: int
    eta: float


@dataclass(frozen=True)
class SegmentResult:
    slices: int
    seconds: float
    device_name: str
    notes: tuple[str, ...] = ()
    postprocessed: bool = False

    @property
    def rate(self) -> float:
        """Slices per second."""
        return self.slices / max(self.seconds, 1e-6)


def covers_whole(request: SegmentRequest, checkpoint, depth: int, reviewed: np.ndarray | None = None) -> bool:
    """Whether the model's post-processing will run (see the module docstring): then :func:`segment` needs the
    document and the annotation."""
    from unetgui.engine import postprocess

    order = range(depth) if request.slices is None else request.slices
    covered = set(order) | (set() if reviewed is None else {int(z) for z in np.flatnonzero(reviewed)})
    return request.postprocess and postprocess.wanted(checkpoint.info.get("postprocessing")) and len(covered) == depth


def segment(request: SegmentRequest, checkpoint, volume: Volume, cancel: CancelToken | None = None,
            progress: ProgressFn | None = None, document: np.ndarray | None = None, reviewed: np.ndarray | None = None,
            annotation: np.ndarray | None = None) -> Iterator[SegmentBatch]:
    """Segment ``volume`` with ``checkpoint`` (engine Checkpoint); yields each finished batch, returns a
    :class:`SegmentResult`. ``document``: the labels shown now and ``reviewed`` the slices the user reviewed
    (never overwritten, and they count towards a whole volume; see the module docstring); ``annotation``: what
    the user drew (255 = not annotated)."""
    from unetgui.engine import postprocess
    from unetgui.engine.inference import Predictor

    depth = volume.shape[0]
    order = list(range(depth)) if request.slices is None else list(request.slices)
    if any(not 0 <= z < depth for z in order):
        raise UnetguiError(f"slices must lie in 1..{depth}")
    reviewed = np.zeros(depth, bool) if reviewed is None else np.asarray(reviewed, bool)
    rule = checkpoint.info.get("postprocessing")
    whole = None
    if covers_whole(request, checkpoint, depth, reviewed):
        whole = np.zeros(volume.shape, np.uint8) if document is None else document.copy()
    predictor = Predictor(checkpoint, device=request.device, tta=request.tta, compile=request.compile,
                          scores=request.scores, threads=request.threads)
    started = time.monotonic()
    for batch in predictor.run(volume.voxels, order, cancel):  # voxels are read-only here
        if whole is not None:  # the task's own copy: predictions over the unreviewed slices
            for z, plane in zip(batch.slices, batch.labels):
                if not reviewed[z]:
                    whole[z] = plane
        scores = batch.scores
        if request.scores and scores is None and batch.uncertainty is not None:
            scores = slice_scores(batch.uncertainty, batch.labels)  # computed here, not on the app's GUI thread
        report(progress, batch.done, batch.total, f"segmenting: ETA {batch.eta:.0f} s")
        yield SegmentBatch(batch.slices, batch.labels, batch.uncertainty, scores, batch.done, batch.total, batch.eta)
    if whole is not None:
        cleaned = postprocess.apply(whole, rule, tuple(volume.spacing), annotation)
        changed = tuple(int(z) for z in np.flatnonzero((cleaned != whole).any(axis=(1, 2))) if not reviewed[z])
        if changed:
            yield SegmentBatch(changed, cleaned[list(changed)], None, None, len(order), len(order), 0.0)
    return SegmentResult(len(order), time.monotonic() - started, predictor.device_name, tuple(predictor.notes),
                         whole is not None)


@dataclass
class Segmentation:
    """A whole result collected from :func:`segment`: ``labels`` ``(z, y, x)`` (slices not segmented: 0) and
    ``uncertainty`` (0..255), with the run's :class:`SegmentResult`."""

    labels: np.ndarray
    uncertainty: np.ndarray
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    result: SegmentResult | None = None


def collect(request: SegmentRequest, checkpoint, volume: Volume, cancel: CancelToken | None = None,
            progress: ProgressFn | None = None, annotation: np.ndarray | None = None) -> Segmentation:
    """:func:`segment` into whole arrays (``unetgui predict``, the evaluations)."""
    out = Segmentation(np.zeros(volume.shape, np.uint8), np.zeros(volume.shape, np.uint8),
                       np.full(volume.shape[0], np.nan))

    def keep(batch: SegmentBatch) -> None:
        index = list(batch.slices)
        out.labels[index] = batch.labels
        if batch.uncertainty is not None:
            out.uncertainty[index] = batch.uncertainty
        if batch.scores is not None:
            out.scores[index] = batch.scores

    out.result = run_to_end(segment(request, checkpoint, volume, cancel, progress, annotation=annotation), keep)
    return out


def suggest(request: SegmentRequest, checkpoint, volume: Volume, reviewed: np.ndarray, count: int | None,
            cancel: CancelToken | None = None, progress: ProgressFn | None = None):
    """The slices to correct next, most uncertain first (core/ranking.py), among those not ``reviewed``:
    (picks, scores per slice with NaN where not segmented)."""
    todo = tuple(z for z in range(volume.shape[0]) if not reviewed[z])
    if not todo:
        raise UnetguiError("every slice is annotated already: nothing to suggest")
    request = SegmentRequest(request.device, todo, request.tta, False, request.compile, False, request.threads)
    segmentation = collect(request, checkpoint, volume, cancel, progress)
    scores = np.full(volume.shape[0], np.nan)
    scores[list(todo)] = slice_scores(segmentation.uncertainty[list(todo)], segmentation.labels[list(todo)])
    return rank_slices(scores, reviewed, count), scores
