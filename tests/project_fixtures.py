"""A small project whose labels live only in its autosave journal (the journal and fuzz tests damage it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unetgui.core.volume import LabelTable, Volume
from unetgui.formats import nifti
from unetgui.project.store import Project, SeriesEntry


def project_with_edits(root: Path, image: Path, shape: tuple[int, int, int], edits: int) -> tuple[Project, SeriesEntry]:
    """A project at ``root`` on a blank CT written to ``image``: an empty labels snapshot, then ``edits``
    journal records, record ``z`` filling slice ``z`` with label 1 (odd records annotating it too) and marking
    slices 0..z reviewed. The
    project is saved and unlocked (closed)."""
    z = shape[0]
    volume = Volume(np.zeros(shape, np.int16), np.eye(4), "CT")
    nifti.write_image(volume, str(image))
    project = Project.create(str(root), LabelTable.from_names("Liver"))
    entry = project.add_series(str(image), volume, "nifti")
    project.save_labels(entry.id, np.zeros(shape, np.uint8), np.zeros(z, bool), np.zeros(z, bool),
                        annotated=np.zeros(shape, bool))
    journal = project.journal(entry.id)
    for k in range(edits):  # every other record carries the annotation mask of its slice (strokes)
        marks = np.ones((1, *shape[1:]), bool) if k % 2 else None
        journal.append([k], np.full((1, *shape[1:]), 1, np.uint8), np.arange(z) <= k, np.zeros(z, bool), marks=marks)
    project.close_journal(entry.id)
    project.save()
    project.unlock()
    return project, entry
