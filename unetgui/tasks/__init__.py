"""Use cases: one module per thing a user does with a model, run alike by the app (on a worker thread,
workers/jobs.py), the command line and the benchmarks. No Qt here; the engine (and torch) is imported when a
task runs, not when this package is imported.

A task is a plain function, or a generator of typed progress events, that takes a typed, validated request
(a frozen dataclass), a data source where it reads annotated volumes (tasks/sources.py), and optionally
``cancel`` (a core.progress.CancelToken), ``progress`` (done, total, message) and ``emit`` (events of a task
driven by callbacks); it returns a typed result. See docs/architecture.md.

* train.py: train or fine-tune a model
* search.py: hyperparameter search (Optuna)
* segment.py: segment an image; suggest the slices to correct next
* evaluate.py: metrics of a model or a prediction against the truth
* models.py: open, save, describe and export (ONNX) model files
* export.py: export a document (labels, overlays, NIfTI, .seg.nrrd, DICOM-SEG, metrics)
* sources.py: the data sources (files, a data set folder, a project)
"""
