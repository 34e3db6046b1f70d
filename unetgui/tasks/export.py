"""Export a document (an image with its labels): label and overlay PNGs, NIfTI, .seg.nrrd, DICOM-SEG, the
metrics CSV and the model, into a folder (formats/export.py); the File > Export dialog and ``unetgui export``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unetgui.core.progress import CancelToken, ProgressFn
from unetgui.core.volume import LabelMap, Volume
from unetgui.formats.export import ExportExists, ExportOptions, export


@dataclass(frozen=True)
class ExportResult:
    """``written``: the files written; ``exists``: the files of an earlier export that this one would replace
    (nothing was written: ask the user, then export again with ``overwrite``)."""

    written: tuple[str, ...] = ()
    exists: tuple[str, ...] = ()


def export_document(volume: Volume, labels: LabelMap, folder: str, options: ExportOptions,
                    evaluation: list[dict] | None = None, model_path: str | None = None,
                    provenance: tuple[np.ndarray, np.ndarray | bool] | None = None,
                    progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                    annotation: np.ndarray | None = None) -> ExportResult:
    try:
        return ExportResult(tuple(export(volume, labels, folder, options, progress, cancel, evaluation, model_path,
                                         provenance, annotation)))
    except ExportExists as exc:
        return ExportResult(exists=tuple(exc.paths))
