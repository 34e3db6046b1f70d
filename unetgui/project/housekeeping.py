"""Cleaning the app's data folder: untitled projects and sample copies not used for ``KEEP_DAYS`` days.

Every image opened without a project joins an untitled project in the app's data folder, and every click on
"sample" copies the sample study there; left alone they pile up (their models are megabytes each). A project
there that nobody has touched for ``KEEP_DAYS`` days is retired, but never at the cost of an annotation:

* a project that is open, or was left open by a crash (its lock is present), is never touched: its edits
  are offered for recovery when it is opened;
* it is locked (exclusively) while it is retired, so that no unetgui opens it meanwhile, and its age is
  checked again under the lock;
* its journals are first folded into the label snapshots (the edits since the last save are kept);
* every series with an annotation is exported as ``<series id>_labels.nii.gz`` on its image's grid, next
  to a copy of ``project.json``, the current model and any journal kept aside (``*.discarded-*``,
  ``*.damaged-*``), into ``retired/<project name>/`` in the data folder;
* if a series with an annotation cannot be exported (its image is gone), the project stays.

Only then is the project folder deleted. No Qt: the app runs :func:`retire_expired` on a worker at start.
"""

from __future__ import annotations

import glob
import os
import shutil
import time

from unetgui.core.errors import UnetguiError
from unetgui.core.progress import CancelToken, check
from unetgui.core.volume import UNANNOTATED, LabelMap, without_unannotated
from unetgui.formats import nifti
from unetgui.project import lock
from unetgui.project.store import PROJECT_FILE, Project

KEEP_DAYS = 30
KINDS = (("projects", "untitled-"), ("samples", "sample-"))


def last_used(root: str) -> float:
    """The newest modification time of the project's files but its lock (opening a project saves project.json)."""
    newest = os.path.getmtime(os.path.join(root, PROJECT_FILE))
    for folder, _, files in os.walk(root):
        for name in files:
            if name == ".lock":
                continue
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


def retire(root: str, data_folder: str, days: float = KEEP_DAYS, now: float | None = None) -> str | None:
    """Export the annotations of the project at ``root`` and delete it; the folder the annotations went to
    (None when there were none). Raises :class:`UnetguiError` (the project stays) when one cannot be kept,
    or when the project is in use."""
    now = time.time() if now is None else now
    lock_path = os.path.join(root, ".lock")
    if not lock.acquire(lock_path):
        raise UnetguiError("it is open (or was left by a crash)")
    try:
        if now - last_used(root) <= days * 86400:
            raise UnetguiError("it was used meanwhile")
        project = Project.open(root)
        keep = os.path.join(data_folder, "retired", os.path.basename(root))
        kept: list[str] = []
        for entry in project.series:
            project.compact(entry.id)  # fold the journal into the snapshot first
            project.close_journal(entry.id)
            saved = project.read_labels(entry.id)
            if saved is None:
                continue
            # what the user annotated (reviewed planes, strokes: background strokes alone count too), 255 elsewhere
            annotation = saved.annotation()
            if not ((without_unannotated(saved.labels) > 0).any() or (annotation != UNANNOTATED).any()):
                continue
            volume = project.load_image(entry)  # raises when the image is gone: the project stays
            os.makedirs(keep, exist_ok=True)
            nifti.write_labels(LabelMap(without_unannotated(saved.labels), volume.affine.copy(), project.table),
                               os.path.join(keep, f"{entry.id}_labels.nii.gz"))
            if (annotation != UNANNOTATED).any():
                nifti.write_labels(LabelMap(annotation, volume.affine.copy(), project.table),
                                   os.path.join(keep, f"{entry.id}_annotation.nii.gz"), annotation=True)
            kept.append(entry.id)
        aside = glob.glob(os.path.join(glob.escape(project.path("labels")), "*.journal.*-*"))
        model = [project.model_path(project.current_model)] if project.current_model else []
        if kept or aside:
            os.makedirs(keep, exist_ok=True)
            for path in [project.path(PROJECT_FILE), *model, *aside]:
                shutil.copyfile(path, os.path.join(keep, os.path.basename(path)))
    except BaseException:
        lock.release(lock_path)
        raise
    shutil.rmtree(root)
    return keep if kept or aside else None


def retire_expired(data_folder: str, days: float = KEEP_DAYS, now: float | None = None,
                   cancel: CancelToken | None = None) -> tuple[list[str], list[str]]:
    """Retire every expired project (``cancel`` is checked between projects); (folders the annotations went to,
    one line per project kept)."""
    kept_in, problems = [], []
    for root in expired(data_folder, days, now):
        check(cancel)
        try:
            where = retire(root, data_folder, days, now)
        except (UnetguiError, OSError) as exc:
            problems.append(f"{os.path.basename(root)} kept: {exc}")
            continue
        if where:
            kept_in.append(where)
    return kept_in, problems
