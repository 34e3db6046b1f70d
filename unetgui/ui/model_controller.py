"""The current model and the tasks that use it: segment (streaming into the overlay), train, search and
evaluate. State and signals only: each use case is a task (unetgui/tasks/) that the JobRunner runs on a
worker; results come back on the GUI thread, where only the Session is changed. Reviewed slices are never
overwritten by a prediction.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QSettings, Signal

from unetgui.core.errors import UnetguiError
from unetgui.core.latest import Latest
from unetgui.core.session import Session
from unetgui.engine.config import DEVICES, check_device
from unetgui.tasks import evaluate as evaluate_task
from unetgui.tasks import models as model_files
from unetgui.tasks import search as search_task
from unetgui.tasks import segment as segment_task
from unetgui.tasks import train as train_task
from unetgui.tasks.sources import ProjectSource
from unetgui.workers.jobs import Job, JobRunner

#: where the app may run the models (engine/config.py DEVICES): "auto" takes a CUDA GPU, then an Apple GPU, then the CPU
DEVICE_CHOICES = DEVICES


class ModelController(QObject):
    model_changed = Signal()
    start_point_changed = Signal()  # other_data changed: whether the current model knows the shown image
    segment_progress = Signal(int, int, float)  # done, total, eta seconds
    segment_done = Signal(str)  # message
    training_event = Signal(object)  # BatchStats | EpochStats
    training_done = Signal(str)  # message
    training_started = Signal()
    evaluated = Signal(object)  # list of tasks.evaluate.EvaluationRow
    failed = Signal(str)
    tune_trial = Signal(object)  # engine.tuning.TrialResult, after each trial of a search
    tune_epoch = Signal(int, float)  # trial number (-1: the refit), its epoch's validation Dice
    tune_done = Signal(object)  # tasks.search.SearchResult

    def __init__(self, session: Session, runner: JobRunner, parent: QObject | None = None,
                 training_sources: Callable | None = None) -> None:
        """``training_sources``: returns what a training takes from the open project besides the shown image
        (project/workspace.py ``Workspace.training_sources``; None or returning None: the shown image only)."""
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.checkpoint = None  # engine Checkpoint of the current model
        self.device_name = ""
        self.last_rate: float | None = None  # slices per second of the last segmentation that finished
        self._segment_job: Job | None = None
        self._train_generation = -1
        self._pending_labels: Latest[np.ndarray] = Latest()  # reviewed slices for the running training
        self._train_job: Job | None = None
        self._tune_job: Job | None = None
        self.run_started = None  # tasks.train.TrainStarted of the running (or last) training
        self.last_run = None  # tasks.train.TrainResult of the last training
        self._segment_generation, self._segment_backup = -1, {}
        self.training_sources = training_sources or (lambda: None)
        self.last_evaluation: list[dict] = []  # rows of the last evaluation, for the metrics CSV of an export
        self.evaluated.connect(self._keep_evaluation)
        session.listeners.volume_changed.append(lambda: setattr(self, "last_evaluation", []))
        self.last_trained = None  # the checkpoint the last training produced
        self.origin = ""  # the path of the file the current model was opened from ("": trained here, or the project's)
        # what the current model was trained on when that is not the shown image, in words ("": it is, or there is
        # no model); the project controller decides it (it knows the series), the training panel says it
        self.other_data = ""
        saved = QSettings().value("device", "auto")
        self.device = saved if saved in DEVICE_CHOICES else "auto"  # where segmentation and training run

    def set_device(self, name: str) -> None:
        """Run the next segmentations, trainings and searches on ``name`` (:data:`DEVICE_CHOICES`), also
        after a restart. A device this machine lacks fails those with a readable message."""
        check_device(name)
        self.device = name
        QSettings().setValue("device", name)

    # -- model files -----------------------------------------------------------------------------
    def open_model(self, path: str) -> None:
        self.runner.run("open model", model_files.load, path, on_failed=self.failed.emit,
                        on_finished=lambda checkpoint: self.set_model(checkpoint, os.path.abspath(path)))

    def save_model(self, path: str) -> None:
        if self.checkpoint is None:
            raise UnetguiError("there is no model to save yet")
        model_files.save(self.checkpoint, path)

    def set_model(self, checkpoint, origin: str = "") -> None:
        """``checkpoint`` (None: no model) becomes the current model; ``origin``: the path it was opened from."""
        self.checkpoint, self.origin = checkpoint, origin
        self.model_changed.emit()

    def set_other_data(self, words: str) -> None:
        """Say what the current model was trained on when the shown image is not part of it ("": it is)."""
        if words != self.other_data:
            self.other_data = words
            self.start_point_changed.emit()

    def card(self) -> str:
        """A short model card: labels, training data, validation metrics, device, date."""
        if self.checkpoint is None:
            return "No model yet: annotate (paint, or mark slices reviewed with R) and press Train."
        return model_files.describe(self.checkpoint)

    # -- segmentation ----------------------------------------------------------------------------
    @property
    def busy_segmenting(self) -> bool:
        return self._segment_job is not None

    def segment(self, slices: list[int] | None = None, device: str | None = None) -> None:
        """Segment ``slices`` (default: all) on a worker, on ``device`` (default: the chosen one); batches fill
        the overlay as they arrive (tasks/segment.py: the reviewed slices stay as drawn and anchor the model's
        post-processing when the result covers the whole volume)."""
        s = self.session
        if not s.is_open:
            raise UnetguiError("open an image first")
        if self.checkpoint is None:
            raise UnetguiError("no model: train one on your annotation, or open a model file")
        if self._segment_job is not None:
            raise UnetguiError("a segmentation is already running")
        request = segment_task.SegmentRequest(device or self.device, None if slices is None else tuple(slices), scores=True)
        self.last_rate = None  # until this one finishes (a cancelled or failed run has no rate to show)
        self._segment_generation, self._segment_backup = s.generation, {}
        # copies (the user keeps editing while it runs), of the whole document only when post-processing needs it
        whole = segment_task.covers_whole(request, self.checkpoint, s.volume.shape[0], s.reviewed)
        self._segment_job = self.runner.run(
            "segment", segment_task.segment, request, self.checkpoint, s.volume, reviewed=s.reviewed.copy(),
            document=s.labels.labels.copy() if whole else None,
            annotation=s.training_labels() if whole and s.has_training_data else None,
            on_item=self._segment_batch, on_finished=self._segment_finished, on_failed=self._segment_failed,
            on_cancelled=self._segment_cancelled, on_done=self._segment_ended)

    def _same_document(self) -> bool:  # results for an image (or labels) opened since are dropped
        return self.session.generation == self._segment_generation

    def _segment_batch(self, batch: segment_task.SegmentBatch) -> None:
        if self._same_document():
            for z in batch.slices:
                self._segment_backup.setdefault(z, self.session.labels.labels[z].copy())
            self.session.apply_prediction(batch.slices, batch.labels, batch.uncertainty, batch.scores)
        self.segment_progress.emit(batch.done, batch.total, batch.eta)

    def _record_segmentation(self) -> None:  # what was written becomes one undo step
        if self._same_document() and self._segment_backup:
            self.session.commit_prediction(self._segment_backup)

    def _segment_failed(self, message: str) -> None:
        # a failed job leaves the document as it was: take back the batches already shown
        if self._same_document() and self._segment_backup:
            self.session.discard_prediction(self._segment_backup)
        self.failed.emit(message)

    def _segment_cancelled(self) -> None:
        self._record_segmentation()
        self.segment_done.emit("Segmentation cancelled")

    def _segment_finished(self, result: segment_task.SegmentResult) -> None:
        self.device_name, self.last_rate = result.device_name, result.rate
        self._record_segmentation()
        extra = "".join(f"\n{n}" for n in result.notes)
        self.segment_done.emit(f"Segmented {result.slices} slice(s) on {self.device_name} "
                               f"({self.last_rate:,.0f} slices/s){extra}")

    def _segment_ended(self) -> None:
        self._segment_job, self._segment_backup = None, {}

    def cancel_segmentation(self) -> None:
        if self._segment_job is not None:
            self._segment_job.cancel()

    # -- training --------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self._train_job is not None

    def train(self, minutes: float | None, overrides: dict, from_current: bool, device: str | None = None) -> None:
        """Train on the reviewed slices (and the project's other series) on a worker (tasks/train.py). The
        engine's planner sets everything the user did not (``overrides``: planner keys, see
        engine/planner.py). ``training_event`` carries the TrainingPlan first, then BatchStats/EpochStats."""
        if self._train_job is not None:
            raise UnetguiError("training is already running")
        if self._tune_job is not None:
            raise UnetguiError("a hyperparameter search is running: stop it first")
        init = self.checkpoint if from_current and self.checkpoint is not None else None
        request = train_task.TrainRequest(device or self.device, minutes, overrides, init)
        source = ProjectSource.of_session(self.session, self.training_sources())
        self._train_generation = self.session.generation
        self._pending_labels.clear()
        self.run_started = self.last_run = None
        self._train_job = self.runner.run(
            "train", train_task.train, request, source, updates=self._pending_labels.take,
            on_item=self._training_item, on_finished=self._training_finished,
            on_cancelled=lambda: self._training_finished(None), on_failed=self.failed.emit, on_done=self._training_ended)
        self.training_started.emit()

    def _training_item(self, event) -> None:
        if isinstance(event, train_task.TrainStarted):
            self.run_started = event
            self.device_name = event.device_name
            self.training_event.emit(event.plan)
        else:
            self.training_event.emit(event)

    def _training_finished(self, result: train_task.TrainResult | None) -> None:
        self.last_run = result
        if result is None or result.checkpoint is None:
            how = "stopped" if result is None else result.how
            self.training_done.emit(f"Training {how} before the first epoch ended: the model is unchanged")
            return
        notes = "".join(f"\n{n}" for n in result.notes)
        self.last_trained = result.checkpoint
        self.set_model(result.checkpoint)
        self.training_done.emit(f"Training {result.how}: the best epoch ({result.best_epoch}) is the current model{notes}")

    def _training_ended(self) -> None:
        self._train_job = None

    def stop_training(self) -> None:
        if self._train_job is not None:
            self._train_job.cancel()

    def reviewed_changed(self) -> None:
        """Train while correcting: slices reviewed during training join at the next epoch."""
        if (self._train_job is not None and self.session.has_training_data
                and self.session.generation == self._train_generation):  # reviews of another image stay out
            self._pending_labels.put(self.session.training_labels())

    def validation_slices(self) -> list[int]:
        """Slices the last training (on the open document) validated on."""
        if self.last_run is None or self._train_generation != self.session.generation:
            return []
        return sorted({z for c, z in self.last_run.validation if c == 0})  # volume 0 is the open image

    # -- hyperparameter search ---------------------------------------------------------------------
    @property
    def tuning(self) -> bool:
        return self._tune_job is not None

    def tune(self, params: tuple[str, ...], trial_minutes: float, minutes: float, folder: str,
             device: str | None = None) -> None:
        """Search ``params`` (tasks/search.py) on the reviewed slices for ``minutes``, each trial
        ``trial_minutes``, on a worker; the study, its trial table, the best configuration and the best
        trial's model go into ``folder``."""
        if self._train_job is not None or self._tune_job is not None:
            raise UnetguiError("a training or a search is already running")
        request = search_task.SearchRequest(os.path.join(folder, "tuned-best.unetgui"), tuple(params), trial_minutes,
                                            minutes, study="app", device=device or self.device,
                                            storage=f"sqlite:///{os.path.join(folder, 'tune.optuna.db')}")  # resumable
        source = ProjectSource.of_session(self.session, self.training_sources())
        self._tune_job = self.runner.run(
            "tune", search_task.search, request, source, on_item=self._search_event, on_finished=self.tune_done.emit,
            # stopped while the data loaded: no trial, no result
            on_cancelled=lambda: self.tune_done.emit(search_task.SearchResult(None, None, "stopped")),
            on_failed=self.failed.emit, on_done=lambda: setattr(self, "_tune_job", None))

    def _search_event(self, event) -> None:
        if isinstance(event, search_task.TrialEpoch):
            self.tune_epoch.emit(event.trial, event.dice)
        elif not isinstance(event, (str, search_task.SearchStarted)):
            self.tune_trial.emit(event)

    def stop_tuning(self) -> None:
        """Stop the search at the end of the running trial's current epoch (the trials so far stay in the study)."""
        if self._tune_job is not None:
            self._tune_job.cancel()

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self) -> None:
        """Metrics of the current model on the validation slices and the test slices (tasks/evaluate.py:
        predicted on a worker, compared with the user's labels; the document is not changed)."""
        if not self.session.is_open:
            raise UnetguiError("open an image first")
        if self.checkpoint is None:
            raise UnetguiError("no model to evaluate")
        sets = {"validation": self.validation_slices(), "test": [int(z) for z in np.flatnonzero(self.session.test)]}
        sets = {name: slices for name, slices in sets.items() if slices}
        if not sets:
            raise UnetguiError("no validation or test slices: train first, or mark reviewed slices as test (Shift+R)")
        self.runner.run("evaluate", evaluate_task.evaluate_model, evaluate_task.EvaluateRequest(self.device),
                        self.checkpoint, self.session.volume, self.session.labels.labels.copy(), sets,
                        on_finished=self.evaluated.emit, on_failed=self.failed.emit)

    def _keep_evaluation(self, rows: list[evaluate_task.EvaluationRow]) -> None:
        self.last_evaluation = [row.to_json() for row in rows]
