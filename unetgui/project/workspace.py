"""The open project and the series shown from it, for the app: what the project controller opens and
switches, and what training reads from (the other series' reviewed planes, the images through the project's
cache). No Qt: the app's controllers get one Workspace in their constructors and share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


from unetgui.core.errors import UnetguiError
from unetgui.core.progress import check
from unetgui.core.annotation import training_labels
from unetgui.core.volume import UNANNOTATED, Volume
from unetgui.project.store import Project, SeriesEntry


@dataclass(frozen=True)
class TrainingSources:
    """See :meth:`Workspace.training_sources`."""

    cache_root: str
    shown_image: Callable  # Volume -> (voxels memory-mapped from the cache, modality, in-plane spacing)
    others: Callable  # (progress, cancel) -> [(name, voxels, training labels, modality, spacing)]


class Workspace:
    """The open project (None: none yet) and the entry of the series shown from it."""

    def __init__(self) -> None:
        self.project: Project | None = None
        self.entry: SeriesEntry | None = None
        # the checkpoint the project holds as its current model (as loaded from, or last saved into, it): the
        # app's current model is ModelController.checkpoint; this tells whether that one is saved already
        self.saved_model = None

    def training_sources(self) -> TrainingSources | None:
        """What training takes from the project (run on the training worker): its cache folder, the shown
        series' image through the cache, and the other series with reviewed planes, each image read into
        the cache once and memory-mapped from there (engine/cache.py), so that a project of many series
        trains without a copy of every image in memory."""
        if self.project is None:
            return None
        project, shown = self.project, self.entry
        others = [e for e in project.series if shown is None or e.id != shown.id]
        root = project.path("cache")

        def cached(entry: SeriesEntry, load):
            from unetgui.engine import cache

            try:
                voxels, modality, spacing, _ = cache.native_image(root, entry.id, [project.source_path(entry)], load)
            except OSError:  # an unwritable project folder or a full disk: train from memory as before
                return load()
            return voxels, modality, spacing

        def shown_image(volume: Volume):
            in_memory = (volume.voxels, volume.modality, tuple(volume.spacing[1:]))
            if shown is None:
                return in_memory
            voxels, modality, spacing = cached(shown, lambda: in_memory)
            return (voxels, modality, spacing) if voxels.shape == volume.voxels.shape else in_memory

        def load_others(progress, cancel):
            cases = []
            for entry in others:
                check(cancel)
                try:
                    saved = project.read_labels(entry.id)
                    if saved is None:
                        continue
                    labels = training_labels(saved.labels, saved.reviewed, saved.test, *saved.planes, saved.annotated)
                    if (labels == UNANNOTATED).all():
                        continue

                    def load(entry=entry):
                        volume = project.load_image(entry)
                        return volume.voxels, volume.modality, tuple(volume.spacing[1:])

                    voxels, modality, spacing = cached(entry, load)
                    cases.append((entry.description or entry.id, voxels, labels, modality, spacing))
                except (UnetguiError, OSError):
                    continue  # a series whose image is missing cannot take part; the others still train
            return cases

        return TrainingSources(root, shown_image, load_others)


def view_state(session) -> dict:
    """Where the user was in a series: the plane shown and the position along each axis."""
    return {"slice": session.current_slice, "axis": session.axis, "position": list(session.position)}


def restore_view(session, state: dict) -> None:
    """Show the plane and position of :func:`view_state` (or of an older state holding the axial slice only)."""
    position = state.get("position")
    if not (isinstance(position, list) and len(position) == 3 and all(type(v) is int for v in position)):
        position = [state["slice"], *session.position[1:]] if type(state.get("slice")) is int else None
    axis = state.get("axis") if state.get("axis") in (0, 1, 2) else session.axis
    session.set_view(axis, position or session.position)


