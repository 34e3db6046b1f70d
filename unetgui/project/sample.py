"""The sample study (resources/sample): copied into a fresh project, ready to open. No Qt."""

from __future__ import annotations

import datetime
import os
import shutil

import numpy as np

from unetgui.core.progress import CancelToken, ProgressFn
from unetgui.core.annotation import label_file_annotation
from unetgui.project.store import ModelEntry, Project


def build_sample(resources: str, root: str, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> str:
    """Create a project at ``root`` holding a copy of the sample's DICOM series, its labels (the annotated
    slices reviewed) and its model as the current one; the resources stay read-only. Returns ``root``."""
    from unetgui.formats import nifti
    from unetgui.formats.inputs import open_image

    sample = os.path.join(resources, "sample")
    project = Project.create(root)
    shutil.copytree(os.path.join(sample, "dicom"), project.path("dicom"))
    volume = open_image(project.path("dicom"), progress=progress).volume
    model = os.path.join(sample, "model.unetgui")
    table = None
    if os.path.isfile(model):  # the label names live in the model file (NIfTI has none)
        from unetgui.engine.checkpoint import load

        table = load(model).labels
    labels = nifti.read_labels(os.path.join(sample, "labels.nii.gz"), volume, table)
    values, reviewed, annotated = label_file_annotation(labels.labels)  # as File > Open labels reads it
    project.table = labels.table
    entry = project.add_series(project.path("dicom"), volume, "dicom")
    project.save_labels(entry.id, values, reviewed, np.zeros_like(reviewed), annotated=annotated)
    project.unlock()
    if os.path.isfile(model):
        os.makedirs(project.path("models"), exist_ok=True)
        shutil.copyfile(model, project.path("models", "sample.unetgui"))
        project.models.append(ModelEntry("models/sample.unetgui", "sample", datetime.datetime.now().isoformat(timespec="seconds"),
                                         {"note": "trained on the 4 annotated slices by resources/build_sample.py"}))
        project.current_model = "models/sample.unetgui"
    project.state["current_series"] = entry.id
    project.save()
    return root
