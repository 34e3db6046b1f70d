"""The open project: which series is shown, autosave of its edits, models kept in the project, crash
recovery, the sample study. The Session stays the owner of the shown document; this owns the Project.

Every image opened joins the open project (an untitled one in the app's data folder when none is open),
so every edit is journaled from the first stroke and nothing is lost to a crash.
"""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QSettings, QStandardPaths, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from unetgui.core.errors import UnetguiError
from unetgui.core.progress import check
from unetgui.core.session import Session, training_labels
from unetgui.core.volume import UNANNOTATED, LabelMap, Volume, without_unannotated
from unetgui.project import housekeeping, lock
from unetgui.project.autosave import Autosaver
from unetgui.project.store import ModelEntry, Project, SeriesEntry, inside
from unetgui.ui.document_io import DocumentIO
from unetgui.ui.model_controller import ModelController
from unetgui.workers.jobs import JobRunner

MAX_RECENT = 8


@dataclass(frozen=True)
class TrainingSources:
    """See :meth:`ProjectController.training_sources`."""

    cache_root: str
    shown_image: Callable  # Volume -> (voxels memory-mapped from the cache, modality, in-plane spacing)
    others: Callable  # (progress, cancel) -> [(name, voxels, training labels, modality, spacing)]


def data_folder() -> str:
    """Where untitled projects and sample copies live (``UNETGUI_DATA`` overrides, e.g. in tests)."""
    folder = os.environ.get("UNETGUI_DATA") or QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    os.makedirs(folder, exist_ok=True)
    return folder


def _stamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")


class ProjectController(QObject):
    project_changed = Signal()  # a project was opened / created / saved as, or its series list changed
    series_changed = Signal()  # another series is shown
    ready = Signal()  # a project open (with its image and model) finished

    def __init__(self, parent: QWidget, session: Session, runner: JobRunner, io: DocumentIO, models: ModelController) -> None:
        super().__init__(parent)
        self.window, self.session, self.runner, self.io, self.models = parent, session, runner, io, models
        self.project: Project | None = None
        self.entry: SeriesEntry | None = None
        self.autosaver: Autosaver | None = None
        self._project_model = None  # the checkpoint last loaded from / saved into the project
        self._training_project: Project | None = None  # where the running training's model belongs
        self._opening: Project | None = None  # the project whose image is loading
        self._warned = False  # one autosave failure message per series shown
        self.retired: tuple[list[str], list[str]] | None = None  # what retire_old did (None: not yet)
        io.present = self.show_volume
        io.replace_labels = self.replace_labels
        models.model_changed.connect(self._keep_model)
        models.training_started.connect(lambda: setattr(self, "_training_project", self.project))
        models.training_sources = self.training_sources

    # -- state -----------------------------------------------------------------------------------
    @property
    def untitled(self) -> bool:
        return self.project is not None and inside(data_folder(), self.project.root) \
            and os.path.basename(self.project.root).startswith("untitled")

    def title(self) -> str:
        if self.project is None:
            return ""
        return "Untitled project" if self.untitled else self.project.name

    def recent(self) -> list[str]:
        value = QSettings().value("recent_projects", [])
        return [v for v in (value if isinstance(value, list) else [value]) if v and os.path.isdir(v)]

    def _remember(self) -> None:
        root = self.project.root
        if not inside(data_folder(), root):  # untitled projects and sample copies stay off the recent list
            QSettings().setValue("recent_projects", ([root] + [p for p in self.recent() if p != root])[:MAX_RECENT])
        QSettings().setValue("open_project", root)  # cleared on a clean close: tells the next start about a crash

    # -- showing a series ----------------------------------------------------------------------------
    def _ensure_project(self) -> Project:
        if self.project is None:
            root = os.path.join(data_folder(), "projects", f"untitled-{_stamp()}")
            self._set_project(Project.create(root, self.session.table if self.session.is_open else None))
        return self.project

    def _set_project(self, project: Project) -> None:
        self.project = project
        project.lock()
        self._remember()
        self.project_changed.emit()

    def _detach(self, snapshot: bool = False) -> None:
        """Stop journaling the shown series (all its edits are in the journal; ``snapshot``: fold them in)."""
        if self.autosaver is not None and self.autosaver.generation == self.session.generation:
            self.autosaver.flush()
            if snapshot:
                self.autosaver.snapshot()
        if self.autosaver is not None:
            self.autosaver.detach()
            self.autosaver = None
        if self.entry is not None and self.session.is_open:
            self.entry.state = self._view_state()

    def _view_state(self) -> dict:
        """Where the user was in a series: the plane shown and the position along each axis."""
        return {"slice": self.session.current_slice, "axis": self.session.axis, "position": list(self.session.position)}

    def _restore_view(self, state: dict) -> None:
        position = state.get("position")
        if not (isinstance(position, list) and len(position) == 3 and all(type(v) is int for v in position)):
            position = [state["slice"], *self.session.position[1:]] if type(state.get("slice")) is int else None
        axis = state.get("axis") if state.get("axis") in (0, 1, 2) else self.session.axis
        self.session.set_view(axis, position or self.session.position)

    def show_volume(self, volume: Volume, source: str, kind: str) -> None:
        """Show a freshly loaded image; it joins the project (with its saved labels if it is in it).
        What can fail (a damaged label file, an unwritable folder) fails before the shown series is let go."""
        try:
            project = self._ensure_project()
            entry = project.add_series(source, volume, kind)
            saved = project.load_labels(entry.id)  # its journal continues from this snapshot
        except (UnetguiError, OSError, ValueError) as exc:
            self.io.error(f"The image could not be added to the project: {exc}")
            return
        self._detach()
        if saved is None:
            self.session.open(volume, table=project.table if len(project.table) else None)
        else:
            self.session.open(volume, LabelMap(saved.labels, volume.affine.copy(), project.table),
                              reviewed=saved.reviewed, test=saved.test, planes=saved.planes)
        self._restore_view(entry.state)
        if not len(project.table):
            project.table = self.session.table
        self.entry = entry
        self._attach(project, entry.id)
        journal = project.journal(entry.id)
        if saved is not None and saved.note:
            aside = f" The damaged file is kept as {journal.kept_aside}." if journal and journal.kept_aside else ""
            self.io.warn("The autosaved edits were partly recovered", [saved.note + "." + aside])
        project.state["current_series"] = entry.id
        project.save()
        self.series_changed.emit()
        self.project_changed.emit()

    def _attach(self, project: Project, series_id: str) -> None:
        self.autosaver = Autosaver(self.session, project, series_id)
        self._warned = False
        self.autosaver.failed = self._autosave_failed

    def _autosave_failed(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            self.io.error(message)

    def replace_labels(self, labels: LabelMap, reviewed: np.ndarray) -> None:
        """Labels opened from a file replace the shown series' labels (saved at once, with their table)."""
        if self.autosaver is not None:
            self.autosaver.flush()
            self.autosaver.detach()
            self.autosaver = None
        self.session.open(self.session.volume, labels, reviewed=reviewed, test=self.session.test)
        if self.project is not None and self.entry is not None:
            self.project.table = self.session.table
            self.project.save()
            self._attach(self.project, self.entry.id)
            self.autosaver.snapshot()

    def show_series(self, series_id: str) -> None:
        """Switch to another series of the project (its image is read on a worker)."""
        project = self.project
        entry = project.find_series(series_id)
        if self.entry is not None and entry.id == self.entry.id:
            return
        self.io.busy.emit(f"Loading {entry.description or entry.id}...")
        self.runner.start(lambda progress, cancel: project.load_image(entry, progress), "load series",
                          on_finished=lambda volume: self.project is project and self.show_volume(volume, project.source_path(entry), entry.kind),
                          on_failed=self.io.error, on_done=lambda: self.io.busy.emit(""))

    # -- project files ---------------------------------------------------------------------------
    def save(self) -> None:
        """Every series' edits into its snapshot, and project.json (Ctrl+S)."""
        if self.project is None:
            return
        self._detach_keep()
        self._compact_others()
        self.project.save()

    def _compact_others(self) -> None:
        """Fold the journals of the series not on screen into snapshots: after a clean save or close, a
        journal only ever holds the edits of the session that wrote it (what a crash recovery offers)."""
        shown = self.entry.id if self.entry is not None else None
        for entry in self.project.series:
            if entry.id != shown:
                try:
                    self.project.compact(entry.id)
                except UnetguiError as exc:
                    self.io.error(str(exc))

    def _detach_keep(self) -> None:
        if self.autosaver is not None and self.autosaver.generation == self.session.generation:
            self.autosaver.flush()
            self.autosaver.snapshot()
        if self.entry is not None and self.session.is_open:
            self.entry.state = self._view_state()

    def close_project(self) -> None:
        """Save and release the project (a clean close: no recovery offered next time)."""
        if self.project is None:
            return
        self._detach(snapshot=True)
        self._compact_others()
        self.project.save()
        self.project.unlock()
        QSettings().remove("open_project")
        self.project, self.entry = None, None

    def new_project(self, root: str) -> None:
        """A new project in an empty folder; the shown image (if any) moves into it with its labels."""
        project = Project.create(root, self.session.table if self.session.is_open else None)
        carry = (self.session.volume, self.project.source_path(self.entry), self.entry.kind) if self.entry else None
        s = self.session
        labels = (s.labels.labels.copy(), s.reviewed.copy(), s.test.copy(),
                  (s.reviewed_coronal.copy(), s.reviewed_sagittal.copy())) if carry else None
        self.close_project()
        self._set_project(project)
        if carry:
            entry = project.add_series(carry[1], carry[0], carry[2])
            project.save_labels(entry.id, *labels)
            self.show_volume(*carry)

    def save_as(self, root: str) -> None:
        """Copy the project (labels, models) into ``root`` and continue there."""
        if self.project is None:
            raise UnetguiError("there is no project to save yet: open an image first")
        self.save()
        copy = self.project.copy_to(root)
        shown = self.entry.id if self.entry else None
        volume = self.session.volume
        self._detach()
        self.project.unlock()
        self.project, self.entry = None, None
        self._set_project(copy)
        if shown is not None:
            entry = copy.find_series(shown)
            self.show_volume(volume, copy.source_path(entry), entry.kind)

    def open_project(self, root: str) -> None:
        """Open a project folder: asks before opening one open in another unetgui or on another machine,
        offers recovery after a crash, then shows its last series and model. The project on screen stays open (and autosaved) until the
        new one's image has loaded; if that fails, nothing changes."""
        try:
            project = Project.open(root)
        except UnetguiError as exc:
            self.io.error(str(exc))
            return
        if self.project is not None and project.root == self.project.root:
            return
        owner = project.lock_owner()
        where = {lock.RUNNING: f"in another unetgui window on this computer (process {owner.pid})",
                 lock.OTHER_HOST: f"on {owner.host or 'another computer'}"}.get(owner.state)
        if where and not self._ask_open_anyway(project, where):
            return
        pending = {e.id: project.pending_edits(e.id) for e in project.series}
        left_open = owner.state in (lock.CRASHED, lock.OTHER_HOST)
        if left_open and any(pending.values()) and not self._ask_recover(project, sum(pending.values())):
            for series_id, n in pending.items():
                if n:
                    project.discard_journal(series_id)
        self._opening = project
        ids = [e.id for e in project.series]
        current = project.state.get("current_series")
        entry = project.find_series(current) if current in ids else (project.series[0] if ids else None)
        if entry is None:  # an empty project: nothing to show yet
            if self._switch_to(project):
                self.session.close()
                self.ready.emit()
            return
        self.io.busy.emit(f"Opening {project.name}...")
        self.runner.start(lambda progress, cancel: project.load_image(entry, progress), "open project",
                          on_finished=lambda volume: self._project_loaded(project, entry, volume),
                          on_failed=lambda message: self.io.error(f"The project {project.name} could not be opened: {message}"),
                          on_done=lambda: self.io.busy.emit(""))

    def _switch_to(self, project: Project) -> bool:
        """Close the project on screen (saved) and make ``project`` the open one, with its model."""
        self.close_project()
        try:
            self._set_project(project)
        except OSError as exc:
            self.io.error(f"{project.root} cannot be written to: {exc}")
            return False
        self._project_model = None
        self.models.set_model(None)  # another project's model does not carry over
        if project.current_model:
            self.runner.start(lambda progress, cancel: project.load_model(), "open project model",
                              on_finished=lambda checkpoint: self.project is project and self._project_model_loaded(checkpoint),
                              on_failed=self.io.error)
        return True

    def _project_loaded(self, project: Project, entry: SeriesEntry, volume: Volume) -> None:
        if self._opening is not project:
            return  # another project was asked for meanwhile
        if self._switch_to(project):
            self.show_volume(volume, project.source_path(entry), entry.kind)
            self.ready.emit()

    def _ask_open_anyway(self, project: Project, where: str) -> bool:
        answer = QMessageBox.question(
            self.window, "unetgui", f"The project \"{project.name}\" is open {where}.\n\nTwo programs editing one "
            "project overwrite each other's work: close it there first. Open it anyway only if that program has "
            "stopped (for example after a crash).", QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Open

    def _ask_recover(self, project: Project, edits: int) -> bool:
        answer = QMessageBox.question(
            self.window, "unetgui", f"unetgui was not closed properly while the project \"{project.name}\" was open.\n\n"
            f"Recover the {edits} edit(s) made after the last save?\n(Discard keeps them in a side file.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard, QMessageBox.StandardButton.Yes)
        return answer != QMessageBox.StandardButton.Discard

    def check_crash(self) -> bool:
        """At start: if the last session did not close cleanly, offer to recover its project. True if opened."""
        root = QSettings().value("open_project", "")
        if not root or not os.path.isfile(os.path.join(root, "project.json")):
            return False
        try:
            project = Project.open(root)
        except UnetguiError:
            return False
        if project.lock_owner().state not in (lock.CRASHED, lock.OTHER_HOST):  # OTHER_HOST: a renamed machine
            return False
        self.open_project(root)  # asks whether to recover the journaled edits
        return True

    # -- models ----------------------------------------------------------------------------------
    def _project_model_loaded(self, checkpoint) -> None:
        self._project_model = checkpoint
        self.models.set_model(checkpoint)

    def _keep_model(self) -> None:
        """A newly trained or opened model is saved into the project (atomically) with its history; a
        training that ends after its project was closed saves into that project, not the open one."""
        checkpoint = self.models.checkpoint
        if checkpoint is None or checkpoint is self._project_model:
            return
        target = self.project
        if checkpoint is self.models.last_trained and self._training_project is not None:
            target = self._training_project
        try:
            target = target or self._ensure_project()
            target.add_model(checkpoint)
        except (UnetguiError, OSError) as exc:
            self.io.error(f"The model could not be saved into the project: {exc}")
            return
        if target is not self.project:
            self.io.warn("A training ended after its project was closed", [
                f"Its model was saved into {target.root}; the open project keeps its own model."])
            self.models.set_model(self._project_model)
            return
        self._project_model = checkpoint
        self.project_changed.emit()

    def training_sources(self) -> TrainingSources | None:
        """What training takes from the project (run on the training worker): its cache folder, the shown
        series' image through the cache, and the other series with reviewed slices, each image read into
        the cache once and memory-mapped from there (engine/cache.py), so that a project of many series
        trains without a copy of every image in memory."""
        if self.project is None:
            return None
        project, shown = self.project, self.entry
        others = [e for e in project.series if shown is None or e.id != shown.id]
        root = project.path("cache")

        def cached(entry: SeriesEntry, load):
            from unetgui.engine import cache

            try:
                voxels, modality, spacing, _ = cache.native_image(root, entry.id, [project.source_path(entry)], load)
            except OSError:  # an unwritable project folder or a full disk: train from memory as before
                return load()
            return voxels, modality, spacing

        def shown_image(volume: Volume):
            in_memory = (volume.voxels, volume.modality, tuple(volume.spacing[1:]))
            if shown is None:
                return in_memory
            voxels, modality, spacing = cached(shown, lambda: in_memory)
            return (voxels, modality, spacing) if voxels.shape == volume.voxels.shape else in_memory

        def load_others(progress, cancel):
            cases = []
            for entry in others:
                check(cancel)
                try:
                    saved = project.read_labels(entry.id)
                    if saved is None:
                        continue
                    labels = training_labels(saved.labels, saved.reviewed, saved.test, *saved.planes)
                    if (labels == UNANNOTATED).all():
                        continue

                    def load(entry=entry):
                        volume = project.load_image(entry)
                        return volume.voxels, volume.modality, tuple(volume.spacing[1:])

                    voxels, modality, spacing = cached(entry, load)
                    cases.append((entry.description or entry.id, voxels, labels, modality, spacing))
                except (UnetguiError, OSError):
                    continue  # a series whose image is missing cannot take part; the others still train
            return cases

        return TrainingSources(root, shown_image, load_others)

    def retire_old(self) -> None:
        """At start, on a worker: untitled projects and sample copies unused for a month are retired, their
        annotations exported first (project/housekeeping.py)."""
        folder = data_folder()

        def done(result) -> None:
            kept_in, problems = result
            if kept_in:
                self.window.statusBar().showMessage(
                    f"{len(kept_in)} untitled project(s) unused for {housekeeping.KEEP_DAYS} days were removed; their "
                    f"annotations are in {os.path.dirname(kept_in[0])}", 15000)
            self.retired = (kept_in, problems)

        self.runner.start(lambda progress, cancel: housekeeping.retire_expired(folder, cancel=cancel), "housekeeping",
                          on_finished=done)

    # -- sample ----------------------------------------------------------------------------------
    def open_sample(self, resources: str, root: str | None = None) -> None:
        """Copy the sample study into a fresh project (resources stay read-only) and open it."""
        sample = os.path.join(resources, "sample")
        if not os.path.isdir(sample):
            self.io.error(f"The sample study is not installed ({sample} is missing).")
            return
        root = root or os.path.join(data_folder(), "samples", f"sample-{_stamp()}")

        def build(progress, cancel):
            from unetgui.formats import nifti
            from unetgui.formats.inputs import open_image

            project = Project.create(root)
            shutil.copytree(os.path.join(sample, "dicom"), project.path("dicom"))
            volume = open_image(project.path("dicom"), progress=progress).volume
            model = os.path.join(sample, "model.unetgui")
            table = None
            if os.path.isfile(model):  # the label names live in the model file (NIfTI has none)
                from unetgui.engine.checkpoint import load

                table = load(model).labels
            labels = nifti.read_labels(os.path.join(sample, "labels.nii.gz"), volume, table)
            annotated = (labels.labels != UNANNOTATED).all(axis=(1, 2))
            project.table = labels.table
            entry = project.add_series(project.path("dicom"), volume, "dicom")
            project.save_labels(entry.id, without_unannotated(labels.labels),
                                annotated, np.zeros_like(annotated))
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

        self.io.busy.emit("Preparing the sample study...")
        self.runner.start(build, "sample", on_finished=self.open_project, on_failed=self.io.error,
                          on_done=lambda: self.io.busy.emit(""))

    # -- dialogs ---------------------------------------------------------------------------------
    def ask_open(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open project folder")
        if folder:
            self.open_project(folder)

    def ask_new(self) -> None:
        self._into_empty_folder("New project: choose an empty folder", self.new_project)

    def ask_save_as(self) -> None:
        self._into_empty_folder("Save project as: choose an empty folder", self.save_as)

    def _into_empty_folder(self, title: str, action) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, title)
        if folder:
            try:
                action(folder)
            except (UnetguiError, OSError) as exc:
                self.io.error(str(exc))
