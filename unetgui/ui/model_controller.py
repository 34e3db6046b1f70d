"""The current model and the jobs that use it: segment (streaming into the overlay) and train.

Engine work runs on the JobRunner's threads; results come back on the GUI thread, where only the
Session is changed. Reviewed slices are never overwritten by a prediction.
"""

from __future__ import annotations

import math
import time

import numpy as np
from PySide6.QtCore import QObject, QSettings, Signal

from unetgui.core.errors import UnetguiError
from unetgui.core.latest import Latest
from unetgui.core.ranking import slice_scores
from unetgui.core.session import Session
from unetgui.engine import postprocess  # torch-free, like the planner
from unetgui.workers.jobs import Job, JobRunner

#: where the app may run the models: engine.device.DEVICES (not imported: it imports torch, which the app loads
#: on its first worker); "auto" takes a CUDA GPU, then an Apple GPU, then the CPU
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _training_volumes(sources, volume, labels, progress, cancel) -> list:
    """The volumes a training or a search takes: the open image with its training labels, and the project's
    other series with reviewed slices, their images memory-mapped from the project's cache (on the worker)."""
    from unetgui.engine.training_run import AnnotatedVolume

    if sources is None:  # no project: the open image alone, in memory
        return [AnnotatedVolume("open image", volume.voxels, labels, volume.modality, tuple(volume.spacing[1:]),
                                volume.spacing[0])]
    voxels, modality, spacing = sources.shown_image(volume)
    return [AnnotatedVolume("open image", voxels, labels, modality, spacing, volume.spacing[0]),
            *(AnnotatedVolume(*case) for case in sources.others(progress, cancel))]


class ModelController(QObject):
    model_changed = Signal()
    segment_progress = Signal(int, int, float)  # done, total, eta seconds
    segment_done = Signal(str)  # message
    training_event = Signal(object)  # BatchStats | EpochStats
    training_done = Signal(str)  # message
    training_started = Signal()
    evaluated = Signal(object)  # list of (set name, LabelMetrics)
    failed = Signal(str)
    tune_trial = Signal(object)  # engine.tuning.TrialResult, after each trial of a search
    tune_epoch = Signal(int, float)  # trial number, its epoch's validation Dice
    tune_done = Signal(object)  # {"model": path or None, "params": best params or None, "how": ...}

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
        self.trainer = None
        self.training_sources = training_sources or (lambda: None)
        self.last_evaluation: list[dict] = []  # rows of the last evaluation, for the metrics CSV of an export
        self.evaluated.connect(self._keep_evaluation)
        session.listeners.volume_changed.append(lambda: setattr(self, "last_evaluation", []))
        self.last_trained = None  # the checkpoint the last training produced
        saved = QSettings().value("device", "auto")
        self.device = saved if saved in DEVICE_CHOICES else "auto"  # where segmentation and training run

    def set_device(self, name: str) -> None:
        """Run the next segmentations, trainings and searches on ``name`` (:data:`DEVICE_CHOICES`), also
        after a restart. A device this machine lacks fails those with a readable message."""
        if name not in DEVICE_CHOICES:
            raise UnetguiError(f"unknown device {name!r}")
        self.device = name
        QSettings().setValue("device", name)

    # -- model files -----------------------------------------------------------------------------
    def open_model(self, path: str) -> None:
        from unetgui.engine import checkpoint as model_file

        self.runner.start(lambda progress, cancel: model_file.load(path), "open model",
                          on_finished=self.set_model, on_failed=self.failed.emit)

    def save_model(self, path: str) -> None:
        from unetgui.engine import checkpoint as model_file

        if self.checkpoint is None:
            raise UnetguiError("there is no model to save yet")
        model_file.save(self.checkpoint, path)

    def set_model(self, checkpoint) -> None:
        self.checkpoint = checkpoint
        self.model_changed.emit()

    def card(self) -> str:
        """A short model card: labels, training data, validation metrics, device, date."""
        if self.checkpoint is None:
            return "No model yet: mark corrected slices as reviewed and press Train."
        from unetgui.engine.checkpoint import describe

        return describe(self.checkpoint)

    # -- segmentation ----------------------------------------------------------------------------
    @property
    def busy_segmenting(self) -> bool:
        return self._segment_job is not None

    def segment(self, slices: list[int] | None = None, device: str | None = None) -> None:
        """Segment ``slices`` (default: all) on a worker, on ``device`` (default: the chosen one); batches fill
        the overlay as they arrive."""
        if not self.session.is_open:
            raise UnetguiError("open an image first")
        if self.checkpoint is None:
            raise UnetguiError("no model: train one on reviewed slices, or open a model file")
        if self._segment_job is not None:
            raise UnetguiError("a segmentation is already running")
        device = device or self.device
        volume, checkpoint, generation = self.session.volume, self.checkpoint, self.session.generation
        order = list(range(volume.shape[0])) if slices is None else list(slices)
        # the model's post-processing is 3-D: it runs when the prediction and the reviewed slices (kept as the
        # user drew them) cover the whole volume, e.g. re-segmenting every unreviewed slice after training
        rule = checkpoint.info.get("postprocessing")
        covered = set(order) | {int(z) for z in np.flatnonzero(self.session.reviewed)}
        whole = self.session.labels.labels.copy() if postprocess.wanted(rule) and len(covered) == volume.shape[0] else None
        # what the user drew (reviewed planes of every axis) anchors the model's annotated-object rule
        anchors = self.session.training_labels() if whole is not None else None

        reviewed = self.session.reviewed.copy()
        self.last_rate = None  # until this one finishes (a cancelled or failed run has no rate to show)

        def work(progress, cancel):
            from unetgui.engine.inference import Predictor, SliceBatch

            predictor = Predictor(checkpoint, device=device, scores=True)  # the ranking's scores from the device
            self.device_name = predictor.device_name
            started = time.monotonic()
            for batch in predictor.run(volume.voxels, order, cancel):  # voxels are read-only here
                if whole is not None:  # the worker's own copy: predictions over the user's reviewed slices
                    for z, plane in zip(batch.slices, batch.labels):
                        if not reviewed[z]:
                            whole[z] = plane
                # the slice ranking: from the predictor, else computed here (not on the GUI thread)
                scores = batch.scores
                if scores is None and batch.uncertainty is not None:
                    scores = slice_scores(batch.uncertainty, batch.labels)
                yield batch, scores
            if whole is not None:  # the objects the user drew on the reviewed slices anchor the model's rule
                cleaned = postprocess.apply(whole, rule, tuple(volume.spacing), anchors)
                changed = tuple(int(z) for z in np.flatnonzero((cleaned != whole).any(axis=(1, 2))) if not reviewed[z])
                if changed:
                    yield SliceBatch(changed, cleaned[list(changed)], np.empty(0, np.uint8), len(order), len(order), 0.0), None
            self.device_name = predictor.device_name
            return predictor.notes, len(order) / max(time.monotonic() - started, 1e-6)

        backup: dict[int, np.ndarray] = {}

        def same_document() -> bool:  # results for an image (or labels) opened since are dropped
            return self.session.generation == generation

        def on_batch(item) -> None:
            batch, scores = item
            if same_document():
                for z in batch.slices:
                    backup.setdefault(z, self.session.labels.labels[z].copy())
                self.session.apply_prediction(batch.slices, batch.labels, batch.uncertainty, scores)
            self.segment_progress.emit(batch.done, batch.total, batch.eta)

        def record() -> None:  # what was written becomes one undo step
            if same_document() and backup:
                self.session.commit_prediction(backup)

        def failed(message: str) -> None:
            # a failed job leaves the document as it was: take back the batches already shown
            if same_document() and backup:
                self.session.discard_prediction(backup)
            self.failed.emit(message)

        def finished(result) -> None:
            notes, self.last_rate = result
            record()
            extra = "".join(f"\n{n}" for n in (notes or []))
            self.segment_done.emit(f"Segmented {len(order)} slice(s) on {self.device_name} "
                                   f"({self.last_rate:,.0f} slices/s){extra}")

        self._segment_job = self.runner.start(
            work, "segment", on_item=on_batch, on_finished=finished, on_failed=failed,
            on_cancelled=lambda: (record(), self.segment_done.emit("Segmentation cancelled")), on_done=self._segment_ended)

    def _segment_ended(self) -> None:
        self._segment_job = None

    def cancel_segmentation(self) -> None:
        if self._segment_job is not None:
            self._segment_job.cancel()

    # -- training --------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self._train_job is not None

    def train(self, minutes: float | None, overrides: dict, from_current: bool, device: str | None = None) -> None:
        """Train on the reviewed slices on a worker. The engine's planner sets everything the user did not
        (``overrides``: planner keys, see engine/planner.py). ``training_event`` carries the TrainingPlan
        first, then BatchStats/EpochStats.

        Everything that touches the engine (and the first import of torch) happens on the worker thread.
        """
        if self._train_job is not None:
            raise UnetguiError("training is already running")
        if self._tune_job is not None:
            raise UnetguiError("a hyperparameter search is running: stop it first")
        session, device = self.session, device or self.device
        if not session.is_open:
            raise UnetguiError("open an image first")
        if not session.has_training_data:
            raise UnetguiError("no reviewed slice yet: correct some slices and mark them reviewed (R)")
        table, volume, labels = session.table, session.volume, session.training_labels()
        self._train_generation = session.generation
        init = self.checkpoint if from_current and self.checkpoint is not None else None
        self._pending_labels.clear()
        self._result = None
        sources = self.training_sources()

        def work(progress, cancel):
            from unetgui.engine.data import with_labels
            from unetgui.engine.training import EpochStats
            from unetgui.engine.training_run import build_trainer

            volumes = _training_volumes(sources, volume, labels, progress, cancel)
            trainer = build_trainer(volumes, table, device, minutes, overrides, init,
                                    cache_root=sources.cache_root if sources else None)
            del volumes  # the native labels of every series: the trainer holds what it needs
            self.trainer = trainer
            yield trainer.plan
            try:
                for event in trainer.run(cancel):
                    yield event
                    # the newest reviewed slices join at the end of an epoch (prepared here, not on the GUI thread)
                    pending = self._pending_labels.take() if isinstance(event, EpochStats) else None
                    if pending is not None:  # the same image (no new copy), the newest labels, in the model's planes
                        pending = np.ascontiguousarray(np.moveaxis(pending, trainer.plan.axis, 0))
                        trainer.update_data([with_labels(trainer.source_cases[0], pending)] + trainer.source_cases[1:])
            finally:
                self._result = trainer.best_checkpoint() if trainer.history else None

        self._train_job = self.runner.start(
            work, "train", on_item=self.training_event.emit, on_finished=lambda _: self._training_finished("finished"),
            on_cancelled=lambda: self._training_finished("stopped"), on_failed=self._training_failed,
            on_done=self._training_ended)
        self.training_started.emit()

    # -- hyperparameter search ---------------------------------------------------------------------
    @property
    def tuning(self) -> bool:
        return self._tune_job is not None

    def tune(self, params: tuple[str, ...], trial_minutes: float, minutes: float, folder: str,
             device: str | None = None) -> None:
        """Search ``params`` (engine/tuning.py) on the reviewed slices for ``minutes``, each trial
        ``trial_minutes``, on a worker; the study and the best trial's model go into ``folder``."""
        import os

        if self._train_job is not None or self._tune_job is not None:
            raise UnetguiError("a training or a search is already running")
        session, device = self.session, device or self.device
        if not session.is_open or not session.has_training_data:
            raise UnetguiError("no reviewed slice yet: correct some slices and mark them reviewed (R)")
        table, volume, labels = session.table, session.volume, session.training_labels()
        sources = self.training_sources()
        os.makedirs(folder, exist_ok=True)
        output = os.path.join(folder, "tuned-best.unetgui")

        def work(progress, cancel):
            from unetgui.engine import tuning

            volumes = _training_volumes(sources, volume, labels, progress, cancel)
            study = tuning.open_study(f"sqlite:///{os.path.join(folder, 'tune.optuna.db')}", "app")
            objective = tuning.objective_for(volumes, table, device, trial_minutes, params, {}, output, cancel,
                                             on_epoch=lambda n, e: self.tune_epoch.emit(n, e.mean_dice),
                                             build={"cache_root": sources.cache_root} if sources else None)
            tuning.run(study, objective, None, minutes, cancel, on_trial=self.tune_trial.emit)
            stopped = cancel is not None and cancel.is_set
            if tuning.needs_refit(study) and stopped:  # the model on disk saw a fold's slices only: not offered
                return {"model": None, "params": None,
                        "how": "stopped before the best settings were trained on every reviewed slice"}
            if tuning.needs_refit(study):
                # the trials were cross-validated (too few reviewed slices to hold some out): the best
                # configuration trains on every reviewed slice; its epochs are told as trial -1
                tuning.refit(study, volumes, table, device, trial_minutes, {}, output, cancel,
                             build={"cache_root": sources.cache_root} if sources else None,
                             on_epoch=lambda n, e: self.tune_epoch.emit(-1, e.mean_dice if e.mean_dice is not None else math.nan))
            done = [r for r in tuning.results(study) if r.state == "complete"]
            best = max(done, key=lambda r: r.value) if done else None
            return {"model": output if best and os.path.isfile(output) else None, "params": best.params if best else None,
                    "how": "stopped" if stopped else "finished"}

        self._tune_job = self.runner.start(
            work, "tune", on_finished=self.tune_done.emit,
            # stopped while loading the data or training the best settings on every slice (after a
            # cross-validated search): the file on disk is not this search's result
            on_cancelled=lambda: self.tune_done.emit({"model": None, "params": None, "how": "stopped"}),
            on_failed=self.failed.emit, on_done=lambda: setattr(self, "_tune_job", None))

    def stop_tuning(self) -> None:
        """Stop the search at the end of the running trial's current epoch (the trials so far stay in the study)."""
        if self._tune_job is not None:
            self._tune_job.cancel()

    def _training_finished(self, how: str) -> None:
        notes = "".join(f"\n{n}" for n in (self.trainer.notes if self.trainer is not None else []))
        if self._result is not None:
            self.last_trained = self._result
            self.set_model(self._result)
            self.training_done.emit(f"Training {how}: the best epoch ({self.trainer.best_epoch}) is the current model{notes}")
        else:
            self.training_done.emit(f"Training {how} before the first epoch ended: the model is unchanged")

    def _training_failed(self, message: str) -> None:
        self.failed.emit(message)

    def _training_ended(self) -> None:
        self._train_job = None

    def validation_slices(self) -> list[int]:
        """Slices the last training (on the open document) validated on."""
        if self.trainer is None or self._train_generation != self.session.generation:
            return []
        return sorted({z for c, z in self.trainer.val_refs if c == 0})  # case 0 is the open image

    def evaluate(self) -> None:
        """Metrics of the current model on the validation slices and the test slices (predicted on a
        worker, compared with the user's labels; the document is not changed)."""
        if not self.session.is_open:
            raise UnetguiError("open an image first")
        if self.checkpoint is None:
            raise UnetguiError("no model to evaluate")
        sets = {"validation": self.validation_slices(), "test": [int(z) for z in np.flatnonzero(self.session.test)]}
        sets = {name: slices for name, slices in sets.items() if slices}
        if not sets:
            raise UnetguiError("no validation or test slices: train first, or mark reviewed slices as test (Shift+R)")
        volume, truth, checkpoint = self.session.volume, self.session.labels.labels.copy(), self.checkpoint
        values, device = list(checkpoint.labels.values), self.device

        def work(progress, cancel):
            from unetgui.engine.inference import Predictor
            from unetgui.engine.metrics import evaluate

            predictor = Predictor(checkpoint, device=device)
            rows = []
            for name, slices in sets.items():
                predicted = predictor.predict(volume.voxels, slices, cancel, keep_probabilities=False).labels
                for metric in evaluate(predicted[slices], truth[slices], volume.spacing, values):
                    rows.append((name, len(slices), metric))
            return rows

        self.runner.start(work, "evaluate", on_finished=self.evaluated.emit, on_failed=self.failed.emit)

    def _keep_evaluation(self, rows) -> None:
        names = {lab.value: lab.name for lab in self.session.table}
        self.last_evaluation = [{"set": name, "slices": n, "name": names.get(m.label, str(m.label)), **m.to_json()}
                                for name, n, m in rows]

    def stop_training(self) -> None:
        if self._train_job is not None:
            self._train_job.cancel()

    def reviewed_changed(self) -> None:
        """Train while correcting: slices reviewed during training join at the next epoch."""
        if (self._train_job is not None and self.session.has_training_data
                and self.session.generation == self._train_generation):  # reviews of another image stay out
            self._pending_labels.put(self.session.training_labels())
