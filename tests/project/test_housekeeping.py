"""Untitled projects and sample copies are retired after a month unused, their annotations exported first,
never a project that is open or was left by a crash (issue 12, item 9)."""

from __future__ import annotations

import json
import os
import socket
import time

import nibabel as nib
import numpy as np
import pytest

from unetgui.core.volume import LabelTable, Volume
from unetgui.formats import nifti
from unetgui.project import housekeeping
from unetgui.project.store import Project

DAY = 86400


def _untitled(data, name: str, image: str, annotate: bool = True, pending: bool = False) -> Project:
    project = Project.create(str(data / "projects" / name), LabelTable.from_names("Liver"))
    volume = nifti.read_image(image)
    entry = project.add_series(image, volume, "nifti")
    labels = np.zeros(volume.shape, np.uint8)
    project.save_labels(entry.id, labels, np.zeros(volume.shape[0], bool), np.zeros(volume.shape[0], bool))
    if annotate:
        plane = np.zeros((1, *volume.shape[1:]), np.uint8)
        plane[0, 2:5, 2:5] = 1
        project.journal(entry.id).append([1], plane, np.arange(volume.shape[0]) == 1, np.zeros(volume.shape[0], bool))
    project.save()
    project.unlock()
    return project


def _age(root: str, days: float) -> None:
    past = time.time() - days * DAY
    for folder, _, files in os.walk(root):
        for name in files + [""]:
            os.utime(os.path.join(folder, name), (past, past))


def test_old_untitled_projects_are_retired_and_nothing_annotated_is_lost(tmp_path):
    data = tmp_path / "data"
    images = []
    for name in ("ct.nii.gz", "gone.nii.gz"):
        images.append(str(tmp_path / name))
        nifti.write_image(Volume(np.zeros((3, 8, 8), np.int16), np.diag([0.7, 0.7, 2.5, 1]), "CT"), images[-1])
    old = _untitled(data, "untitled-1", images[0])  # its edit is in the journal only
    empty = _untitled(data, "untitled-2", images[0], annotate=False)
    recent = _untitled(data, "untitled-3", images[0])
    crashed = _untitled(data, "untitled-4", images[0])
    with open(crashed.path(".lock"), "w") as f:
        json.dump({"pid": 2**22 + 7, "host": socket.gethostname()}, f)
    gone = _untitled(data, "untitled-5", images[1])
    os.remove(images[1])  # its image was deleted: its annotation cannot be exported on its grid
    for project in (old, empty, crashed, gone):
        _age(project.root, housekeeping.KEEP_DAYS + 15)
    assert housekeeping.expired(str(data)) == [old.root, empty.root, gone.root]
    kept_in, problems = housekeeping.retire_expired(str(data))
    assert kept_in == [str(data / "retired" / "untitled-1")] and not os.path.exists(old.root)
    assert not os.path.exists(empty.root)  # nothing annotated: removed, nothing exported
    assert os.path.isdir(gone.root) and len(problems) == 1 and problems[0].startswith("untitled-5 kept:")
    assert os.path.isdir(recent.root) and os.path.isdir(crashed.root)  # used lately; left by a crash


def test_an_exported_annotation_is_on_the_image_grid(tmp_path):
    data = tmp_path / "data"
    image = str(tmp_path / "ct.nii.gz")
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    nifti.write_image(Volume(np.zeros((3, 8, 8), np.int16), affine, "CT"), image)
    old = _untitled(data, "untitled-1", image)
    _age(old.root, 45)
    aside = old.path("labels", "s1.journal.discarded-20261001-120000-000000")  # edits a user once set aside
    with open(aside, "wb") as f:
        f.write(b"kept")
    _age(old.root, 45)
    kept_in, problems = housekeeping.retire_expired(str(data))
    assert not problems and not os.path.exists(old.root)
    (keep,) = kept_in
    assert sorted(os.listdir(keep)) == ["project.json", "s1.journal.discarded-20261001-120000-000000",
                                        "s1_annotation.nii.gz", "s1_labels.nii.gz"]
    img = nib.load(os.path.join(keep, "s1_labels.nii.gz"))
    labels = np.asanyarray(img.dataobj).transpose(2, 1, 0)
    assert np.allclose(img.affine, affine) and labels[1, 2:5, 2:5].all() and labels.sum() == 9
    # what was annotated (slice 1 reviewed), 255 elsewhere: reopened, it annotates the same voxels
    annotation = nifti.read_labels(os.path.join(keep, "s1_annotation.nii.gz")).labels
    assert np.array_equal(annotation[1], labels[1]) and (annotation[[0, 2]] == 255).all()


def test_background_strokes_alone_are_kept_when_a_project_retires(tmp_path):
    data = tmp_path / "data"
    image = str(tmp_path / "ct.nii.gz")
    nifti.write_image(Volume(np.zeros((3, 8, 8), np.int16), np.diag([0.7, 0.7, 2.5, 1.0]), "CT"), image)
    old = _untitled(data, "untitled-1", image, annotate=False)
    marks = np.zeros((1, 8, 8), bool)
    marks[0, 1:3, 1:6] = True  # "none of the labels here", nothing else
    again = Project.open(old.root)
    again.start_journal("s1", (3, 8, 8), resume=True).append([2], np.zeros((1, 8, 8), np.uint8), np.zeros(3, bool),
                                                           np.zeros(3, bool), marks=marks)
    again.close_journal("s1")
    again.unlock()
    _age(old.root, 45)
    (keep,), problems = housekeeping.retire_expired(str(data))
    annotation = nifti.read_labels(os.path.join(keep, "s1_annotation.nii.gz")).labels
    assert not problems and np.array_equal(annotation != 255, np.stack([np.zeros((8, 8), bool)] * 2 + [marks[0]]))
    assert (annotation[2][marks[0]] == 0).all()


def test_a_project_opened_meanwhile_is_not_retired(tmp_path):
    """expired() and retire() are two steps: a unetgui that opens the project between them holds its lock,
    and retire() takes the lock exclusively, so it backs off and leaves that lock alone."""
    from unetgui.core.errors import UnetguiError

    data = tmp_path / "data"
    image = str(tmp_path / "ct.nii.gz")
    nifti.write_image(Volume(np.zeros((3, 8, 8), np.int16), np.eye(4), "CT"), image)
    old = _untitled(data, "untitled-1", image)
    _age(old.root, 45)
    assert housekeeping.expired(str(data)) == [old.root]
    opened = Project.open(old.root)
    opened.lock()  # another window opens it now
    with pytest.raises(UnetguiError, match="it is open"):
        housekeeping.retire(old.root, str(data))
    assert os.path.isfile(old.path("project.json")) and opened.lock_owner().state == "ours"
    opened.unlock()
