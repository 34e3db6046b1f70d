"""Autosave: every committed edit of the open series goes to the project's journal within milliseconds.

An :class:`Autosaver` listens to the :class:`~unetgui.core.session.Session` (plain callbacks, no Qt). It
collects the slices that changed and, when an edit is committed (end of a stroke, fill, undo, redo, a
finished segmentation, a review flag), appends them with the flags to the journal and fsyncs. A stroke in
progress is not journaled until it ends, so a crash loses at most that stroke. :meth:`snapshot` writes
the whole label volume and starts a fresh journal (on save and close; about 1 s for 300 slices of 512^2,
so a series switch only closes the journal, and showing the series again continues it).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from unetgui.core.errors import FormatError, UnetguiError
from unetgui.core.session import Session
from unetgui.project.store import Project


class Autosaver:
    def __init__(self, session: Session, project: Project, series_id: str,
                 failed: Callable[[str], None] | None = None) -> None:
        """``failed``: told (a message for the user) when a journal write fails; the edits stay dirty and
        the next one tries again."""
        self.session, self.project, self.series_id = session, project, series_id
        self.generation = session.generation  # the document this saver journals (a later open is not it)
        self.failed = failed or (lambda message: None)
        self._dirty: set[int] = set()  # whole axial slices (a segmentation's)
        self._box: tuple[slice, slice, slice] | None = None  # the box holding the edits since the last flush
        self._flags = self._current_flags()
        if project.journal(series_id) is None:
            if not os.path.isfile(project.labels_path(series_id)):
                self.snapshot()  # the first save of the series
            else:  # the session shows the snapshot + journal: keep appending to that journal
                project.start_journal(series_id, session.labels.shape, resume=True)
        self._callbacks = (("labels_changed", self._changed), ("history_changed", self.flush),
                           ("reviewed_changed", self.flush), ("committed", self.flush), ("table_changed", self._table))
        for name, callback in self._callbacks:
            getattr(session.listeners, name).append(callback)

    def detach(self) -> None:
        """Stop listening and close the journal (everything committed is in it already)."""
        self.project.close_journal(self.series_id)
        for name, callback in self._callbacks:
            listeners = getattr(self.session.listeners, name)
            if callback in listeners:
                listeners.remove(callback)

    def _ours(self) -> bool:
        if self.session.generation != self.generation:
            self.detach()  # another document was opened without this saver being told: stop journaling
            return False
        return True

    def _current_flags(self) -> tuple[np.ndarray, ...]:
        s = self.session
        made = s.predicted.copy() if s.predicted is not None else np.zeros(0, bool)
        return s.reviewed.copy(), s.test.copy(), s.reviewed_coronal.copy(), s.reviewed_sagittal.copy(), made

    def _changed(self, slices, box=None) -> None:
        if not self._ours():
            return
        if box is None:
            self._dirty.update(int(z) for z in slices)
        else:
            self._box = box if self._box is None else tuple(
                slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(self._box, box))

    def _table(self) -> None:
        if self._ours() and self.project.table != self.session.table:
            self.project.table = self.session.table
            self.project.save()

    @property
    def unsaved(self) -> bool:
        """Changes seen but not journaled yet (a stroke or a segmentation still running)."""
        return bool(self._dirty) or self._box is not None

    def flush(self) -> None:
        """Journal what changed since the last flush (called on every committed edit)."""
        if self.session.stroke_open or not self._ours():
            return  # the stroke's end flushes it
        s = self.session
        flags = self._current_flags()
        if not self.unsaved and all(np.array_equal(a, b) for a, b in zip(self._flags, flags)):
            return
        slices = sorted(self._dirty)
        planes, made = (s.reviewed_coronal, s.reviewed_sagittal), s.predicted
        journal = self.project.journal(self.series_id)
        try:
            if journal is None:
                raise FormatError("the autosave journal is not open")
            # the user's edits (a box) first: a crash between the two records then loses the segmentation's
            # slices, never a stroke whose plane the flags already call reviewed
            had_box = self._box is not None
            if had_box:
                box = self._box
                journal.append_box(tuple(b.start for b in box), s.labels.labels[box], s.reviewed, s.test, planes, made,
                                   s.annotated[box])
                self._box = None
            if slices or not had_box:  # whole slices, or a change of flags alone
                journal.append(slices, s.labels.labels[slices], s.reviewed, s.test, planes, made, s.annotated[slices])
                self._dirty.clear()
        except (UnetguiError, OSError) as exc:  # kept dirty: the next edit (or Save) tries again
            self.failed(f"Autosave failed: {exc}. Your edits are still on screen; free disk space or "
                        "use File > Save project as to save them elsewhere.")
            return
        self._flags = flags

    def snapshot(self) -> None:
        """Save all labels of the series and start an empty journal."""
        s = self.session
        if s.generation != self.generation:
            raise RuntimeError("the session shows another document than this autosaver's")
        self.project.save_labels(self.series_id, s.labels.labels, s.reviewed, s.test,
                                 (s.reviewed_coronal, s.reviewed_sagittal), s.predicted, s.annotated)
        self._dirty.clear()
        self._box = None
        self._flags = self._current_flags()
