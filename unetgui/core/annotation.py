"""What the user annotated, as training and files see it (numpy only, no Qt): the training labels of a
document (reviewed planes of every axis and the voxels annotated by strokes, 255 elsewhere), the annotation
other tools read (a 255-encoded file), the one reading of a label file (File > Open labels, ``train --labels``),
and provenance per slice (edited by the user, written by a model) for DICOM-SEG.

The document's state itself (labels, review flags, the annotation mask) belongs to the Session (core/session.py).
"""

from __future__ import annotations

import numpy as np

from unetgui.core.volume import UNANNOTATED, annotated_slices, without_unannotated


def training_mask(reviewed: np.ndarray, test: np.ndarray, coronal: np.ndarray | None = None,
                  sagittal: np.ndarray | None = None) -> np.ndarray:
    """``(z, y, x)`` bool (broadcast): the voxels a training learns from: those of reviewed axial slices and of
    reviewed coronal / sagittal planes, none of a test slice."""
    keep = (reviewed & ~test)[:, None, None]
    if coronal is not None and sagittal is not None and (coronal.any() or sagittal.any()):
        crossed = coronal[None, :, None] | sagittal[None, None, :]
        keep = keep | (crossed & ~test[:, None, None])
    return keep


def training_labels(labels: np.ndarray, reviewed: np.ndarray, test: np.ndarray, coronal: np.ndarray | None = None,
                    sagittal: np.ndarray | None = None, annotated: np.ndarray | None = None) -> np.ndarray:
    """``labels`` where :func:`training_mask` holds or the user's strokes ``annotated`` them (``(z, y, x)``
    bool; not in test slices), 255 ("not annotated") elsewhere. Copies plane by plane what is annotated (no
    pass over the whole volume per mask: this runs at every stroke while a training runs)."""
    out = np.full(labels.shape, UNANNOTATED, np.uint8)
    keep = ~np.asarray(test, bool)
    rows = np.flatnonzero(np.asarray(reviewed, bool) & keep)
    out[rows] = labels[rows]
    z = np.flatnonzero(keep)
    for axis, flags in ((1, coronal), (2, sagittal)):
        for k in np.flatnonzero(flags) if flags is not None else ():
            where = (z, k, slice(None)) if axis == 1 else (z, slice(None), k)
            out[where] = labels[where]
    if annotated is not None and annotated.size:
        for k in np.flatnonzero(stroke_slices(annotated) & keep):
            np.copyto(out[k], labels[k], where=annotated[k])
    return out


def annotation_labels(labels: np.ndarray, reviewed: np.ndarray, coronal: np.ndarray, sagittal: np.ndarray,
                      annotated: np.ndarray | None) -> np.ndarray:
    """Everything the user annotated (reviewed planes, test slices included, and strokes) with 255 elsewhere:
    the 255-encoded label file other tools read as a sparse annotation, and that opens here as the same."""
    return training_labels(labels, reviewed, np.zeros(labels.shape[0], bool), coronal, sagittal, annotated)


def label_file_annotation(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """What a label file ``(z, y, x)`` annotates, by its meaning (255 = not annotated, any other value is the
    annotator's word): the one reading of the app (File > Open labels, the sample study) and of ``train`` /
    ``tune --labels``. Returns ``(labels, reviewed, annotated)``: the labels with 255 written as 0; the axial
    slices it annotates wholly (a sparse file's slices without 255; every slice of a dense file, its empty
    slices included: they say "none of the structures here", as a data set's do); and for a sparse file its
    other voxels that are not 255 (None for a dense file). Its training labels
    (:func:`label_file_training_labels`) are the file itself."""
    sparse = bool((labels == UNANNOTATED).any())
    reviewed = annotated_slices(labels) if sparse else np.ones(labels.shape[0], bool)
    # the mask outside the wholly annotated slices: R on one of them then takes it out of training again
    marks = ((labels != UNANNOTATED) & ~reviewed[:, None, None]) if sparse else None
    return without_unannotated(labels), reviewed, marks


def label_file_training_labels(labels: np.ndarray) -> np.ndarray:
    """The training labels (255 = not annotated) of a label file, as the app would train on it opened."""
    values, reviewed, annotated = label_file_annotation(labels)
    return training_labels(values, reviewed, np.zeros(reviewed.size, bool), annotated=annotated)


def stroke_slices(annotated: np.ndarray | None, axis: int = 0) -> np.ndarray:
    """Per plane along ``axis``: some voxel annotated by a stroke."""
    if annotated is None or not annotated.size:
        return np.zeros(0 if annotated is None else annotated.shape[axis], bool)
    return annotated.any(axis=tuple(a for a in range(3) if a != axis))


def provenance(reviewed: np.ndarray, coronal: np.ndarray, sagittal: np.ndarray,
               predicted: np.ndarray | None, annotated: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(edited, model_made)`` per axial slice (see Session.provenance) from saved flags."""
    crossed = bool(coronal.any() or sagittal.any())
    edited = reviewed | crossed
    if annotated is not None:
        edited = edited | stroke_slices(annotated)
    return edited, None if predicted is None else np.asarray(predicted, bool).copy()
