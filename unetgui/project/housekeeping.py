"""Cleaning the app's data folder: untitled projects and sample copies not used for ``KEEP_DAYS`` days.

Every image opened without a project joins an untitled project in the app's data folder, and every click on
"sample" copies the sample study there; left alone they pile up (their models are megabytes each). A project
there that nobody has touched for ``KEEP_DAYS`` days is retired, but never at the cost of an annotation:

* a project that is open, or was left open by a crash (its lock is present), is never touched: its edits
  are offered for recovery when it is opened;
* its journals are first folded into the label snapshots (the edits since the last save are kept);
* every series with an annotation is exported as ``<series id>_labels.nii.gz`` on its image's grid, next
  to a copy of ``project.json``, into ``retired/<project name>/`` in the data folder;
* if a series with an annotation cannot be exported (its image is gone), the project stays.

Only then is the project folder deleted. No Qt: the app runs :func:`retire_expired` on a worker at start.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np

from unetgui.core.errors import UnetguiError
from unetgui.core.volume import UNANNOTATED, LabelMap
from unetgui.formats import nifti
from unetgui.project import lock
from unetgui.project.store import PROJECT_FILE, Project

KEEP_DAYS = 30
KINDS = (("projects", "untitled-"), ("samples", "sample-"))


def last_used(root: str) -> float:
    """The newest modification time of the project's files (opening a project saves project.json)."""
    newest = os.path.getmtime(root)
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                newest = max(newest, os.path.getmtime(os.path.join(folder, name)))
            except OSError:
                pass
    return newest


def expired(data_folder: str, days: float = KEEP_DAYS, now: float | None = None) -> list[str]:
    """Untitled projects and sample copies in ``data_folder`` unused for ``days`` and not locked."""
    now = time.time() if now is None else now
    found = []
    for sub, prefix in KINDS:
        parent = os.path.join(data_folder, sub)
        if not os.path.isdir(parent):
            continue
        for name in sorted(os.listdir(parent)):
            root = os.path.join(parent, name)
            if not (name.startswith(prefix) and os.path.isfile(os.path.join(root, PROJECT_FILE))):
                continue
            if lock.owner(os.path.join(root, ".lock")).state != lock.NONE:
                continue  # open now, or left by a crash: its edits wait for recovery
            if now - last_used(root) > days * 86400:
                found.append(root)
    return found


def retire(root: str, data_folder: str) -> str | None:
    """Export the annotations of the project at ``root`` and delete it; the folder the annotations went to
    (None when there were none). Raises :class:`UnetguiError` (the project stays) when one cannot be kept."""
    project = Project.open(root)
    try:
        keep = os.path.join(data_folder, "retired", os.path.basename(root))
        written = False
        for entry in project.series:
            project.compact(entry.id)  # fold the journal into the snapshot first
            saved = project.read_labels(entry.id)
            if saved is None or not ((saved.labels > 0) & (saved.labels != UNANNOTATED)).any():
                continue
            volume = project.load_image(entry)  # raises when the image is gone: the project stays
            os.makedirs(keep, exist_ok=True)
            labels = np.where(saved.labels == UNANNOTATED, 0, saved.labels).astype(np.uint8)
            nifti.write_labels(LabelMap(labels, volume.affine.copy(), project.table),
                               os.path.join(keep, f"{entry.id}_labels.nii.gz"))
            written = True
        if written:
            shutil.copyfile(project.path(PROJECT_FILE), os.path.join(keep, PROJECT_FILE))
    finally:
        project.unlock()
    shutil.rmtree(root)
    return keep if written else None


def retire_expired(data_folder: str, days: float = KEEP_DAYS, now: float | None = None) -> tuple[list[str], list[str]]:
    """Retire every expired project; (folders the annotations went to, one line per project kept)."""
    kept_in, problems = [], []
    for root in expired(data_folder, days, now):
        try:
            where = retire(root, data_folder)
        except (UnetguiError, OSError) as exc:
            problems.append(f"{os.path.basename(root)} kept: {exc}")
            continue
        if where:
            kept_in.append(where)
    return kept_in, problems
