"""The open project: which series is shown, autosave of its edits, models kept in the project, crash
recovery, the sample study, and the dialogs for them. The Session stays the owner of the shown document;
the Workspace (project/workspace.py, Qt-free, shared with the model controller) holds the open project and
the shown series; this controller decides when they change.

Every image opened joins a project (an untitled one in the app's data folder when none is open), so every
edit is journaled from the first stroke and nothing is lost to a crash. An image opened while a project
holding other series is open joins it only when the user says so; otherwise it starts a new project, with
no model (a model trained on other data is never the starting point without the panel saying so).
"""

from __future__ import annotations

import datetime
import os

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import QAbstractButton, QFileDialog, QLabel, QMessageBox, QWidget

from unetgui.core.errors import UnetguiError
from unetgui.core.paths import data_root
from unetgui.core.annotation import label_file_annotation
from unetgui.core.session import Session
from unetgui.core.volume import LabelMap, Volume
from unetgui.project import housekeeping, lock
from unetgui.project.autosave import Autosaver
from unetgui.project.sample import build_sample
from unetgui.project.store import Project, SeriesEntry, inside
from unetgui.project.workspace import Workspace, restore_view, view_state
from unetgui.ui.document_io import DocumentIO
from unetgui.ui.model_controller import ModelController
from unetgui.ui.recent import RecentList
from unetgui.workers.jobs import JobRunner

RECENT_PROJECTS = RecentList("recent_projects", os.path.isdir)  # the welcome panel's list


def data_folder() -> str:
    """Where untitled projects and sample copies live: the data root (core/paths.py; ``UNETGUI_DATA`` overrides)."""
    folder = data_root()
    os.makedirs(folder, exist_ok=True)
    return folder


def _stamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def _holds(project: Project, volume: Volume, source: str, kind: str) -> bool:
    """``project`` has ``source``'s series already (Project.add_series would return its entry)."""
    uid = volume.info.series_uid if kind == "dicom" else ""
    for entry in project.series:
        path = project.source_path(entry)
        if os.path.exists(path) and os.path.exists(source) and os.path.samefile(path, source) \
                and entry.series_uid == uid and tuple(entry.shape) == tuple(volume.shape):
            return True
    return False


def _names(series: dict[str, str], most: int = 3) -> str:
    """Series names for a sentence: "a, b and c", or "a, b, c and 2 more"."""
    names = list(series.values())
    if len(names) > most:
        return f"{', '.join(names[:most])} and {len(names) - most} more"
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


class ProjectController(QObject):
    project_changed = Signal()  # a project was opened / created / saved as, or its series list changed
    series_changed = Signal()  # another series is shown
    ready = Signal()  # a project open (with its image and model) finished

    def __init__(self, parent: QWidget, session: Session, runner: JobRunner, io: DocumentIO, models: ModelController,
                 workspace: Workspace) -> None:
        super().__init__(parent)
        self.window, self.session, self.runner, self.io, self.models = parent, session, runner, io, models
        self.workspace = workspace
        self.autosaver: Autosaver | None = None
        self._training_project: Project | None = None  # where the running training's model belongs
        self._opening: Project | None = None  # the project whose image is loading
        self._warned = False  # one autosave failure message per series shown
        self.retired: tuple[list[str], list[str]] | None = None  # what retire_old did (None: not yet)
        self.question: QMessageBox | None = None  # "add it to this project or start a new one?" while it is open
        self.answers: dict[str, QAbstractButton] = {}  # its buttons: "add", "new", "cancel"
        # the series of the open project the current model learnt from (id -> name; empty: none of them), and
        # those of the project the running training reads
        self._model_series: dict[str, str] = {}
        self._training_series: dict[str, str] = {}
        models.model_changed.connect(self._keep_model)
        models.training_started.connect(self._on_training_started)
        session.listeners.reviewed_changed.append(self._remember_edit_mode)

    # -- state -----------------------------------------------------------------------------------
    @property
    def project(self) -> Project | None:
        """The open project (the workspace's)."""
        return self.workspace.project

    @project.setter
    def project(self, project: Project | None) -> None:
        self.workspace.project = project

    @property
    def entry(self) -> SeriesEntry | None:
        """The shown series' entry in the project."""
        return self.workspace.entry

    @entry.setter
    def entry(self, entry: SeriesEntry | None) -> None:
        self.workspace.entry = entry

    @property
    def sample(self) -> bool:
        """The open project is a copy of the sample study (open_sample)."""
        return self.project is not None and inside(os.path.join(data_folder(), "samples"), self.project.root)

    @property
    def untitled(self) -> bool:
        return self.project is not None and inside(data_folder(), self.project.root) \
            and os.path.basename(self.project.root).startswith("untitled")

    def title(self) -> str:
        if self.project is None:
            return ""
        if self.sample:  # a copy in a timestamped folder: the user knows it as the sample
            return "Sample study"
        return "Untitled project" if self.untitled else self.project.name

    def recent(self) -> list[str]:
        return RECENT_PROJECTS.items()

    def _remember(self) -> None:
        root = self.project.root
        if not inside(data_folder(), root):  # untitled projects and sample copies stay off the recent list
            RECENT_PROJECTS.add(root)
        QSettings().setValue("open_project", root)  # cleared on a clean close: tells the next start about a crash

    # -- showing a series ----------------------------------------------------------------------------
    def _ensure_project(self) -> Project:
        if self.project is None:
            root = os.path.join(data_folder(), "projects", f"untitled-{_stamp()}")
            self._set_project(Project.create(root, self.session.table if self.session.is_open else None))
        return self.project

    def _set_project(self, project: Project) -> None:
        self.project = project
        # whether an edit marks its plane reviewed is the project's choice (default: strokes only)
        self.session.set_review_on_edit(project.state.get("review_on_edit") is True)
        project.lock()
        self._remember()
        self.project_changed.emit()

    def _remember_edit_mode(self) -> None:
        project = self.project
        if project is not None and (project.state.get("review_on_edit") is True) != self.session.review_on_edit:
            project.state["review_on_edit"] = self.session.review_on_edit
            try:
                project.save()
            except OSError as exc:
                self.io.error(f"The project could not be saved: {exc}")

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
            self.entry.state = view_state(self.session)

    def show_volume(self, volume: Volume, source: str, kind: str) -> None:
        """Show an image the user opened (DocumentIO.image_loaded). With a project open that holds other series,
        ask first (non-blocking, :attr:`question`): add it to this project, or start a new one; Cancel changes
        nothing. An image the project holds already is shown with its labels."""
        project = self.project
        if project is None or not project.series or _holds(project, volume, source, kind):
            self._show(volume, source, kind)
            return
        self._ask_where(project, volume, source, kind)

    def _ask_where(self, project: Project, volume: Volume, source: str, kind: str) -> None:
        if self.question is not None:  # an earlier image still waiting: this one replaces it
            self.question.reject()
        name = volume.info.series_description or os.path.basename(source.rstrip(os.sep)) or "the image"
        title = "the sample's project" if self.sample else \
            "the untitled project" if self.untitled else f"the project \"{project.name}\""
        model = f", starting from its model (trained on {_names(self._model_series)})" \
            if self.models.checkpoint is not None and self._model_series else ""
        box = QMessageBox(QMessageBox.Icon.Question, "unetgui", f"Add {name} to {title}?", parent=self.window)
        box.setTextFormat(Qt.TextFormat.PlainText)  # the series description comes from the file: never markup
        box.finished.connect(box.deleteLater)
        box.setInformativeText(
            f"Add to this project: this image and the project's {len(project.series)} series train together{model}."
            "\n\nStart a new project: an empty project, with no model. The open project is saved as it is.")
        informative = box.findChild(QLabel, "qt_msgbox_informativelabel")  # series names: plain text too
        if informative is not None:
            informative.setTextFormat(Qt.TextFormat.PlainText)
        self.answers = {"add": box.addButton("Add to this project", QMessageBox.ButtonRole.AcceptRole),
                        "new": box.addButton("Start a new project", QMessageBox.ButtonRole.AcceptRole),
                        "cancel": box.addButton(QMessageBox.StandardButton.Cancel)}
        box.setDefaultButton(self.answers["new" if self.sample else "add"])  # a user's study is not the sample's
        answers, image = self.answers, (volume, source, kind)
        box.finished.connect(lambda _r: self._on_question_answered(
            box, next((k for k, b in answers.items() if b is box.clickedButton()), "cancel"), project, image))
        self.question = box
        box.open()  # window-modal, and no nested event loop: the image waits for the answer

    def _on_question_answered(self, box: QMessageBox, answer: str, asked: Project, image: tuple) -> None:
        if self.question is box:
            self.question, self.answers = None, {}
        if answer == "cancel":
            return  # the open project and image stay as they were (their edits are autosaved)
        if self.project is not asked:  # another project was opened meanwhile: ask about that one
            self.show_volume(*image)
        elif answer == "add":
            self._show(*image)
        else:
            self._start_new(*image)

    def _start_new(self, volume: Volume, source: str, kind: str) -> None:
        """An untitled project for ``volume``, with no model; the open project is saved and closed first (made
        before the open one is let go, so that a failure leaves it open and autosaving)."""
        root = os.path.join(data_folder(), "projects", f"untitled-{_stamp()}")
        try:
            project = Project.create(root)
            project.add_series(source, volume, kind)
        except (UnetguiError, OSError, ValueError) as exc:
            self.io.error(f"A new project could not be made: {exc}")
            return
        if self._switch_to(project):
            self._show(volume, source, kind)

    def _show(self, volume: Volume, source: str, kind: str) -> None:
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
                              reviewed=saved.reviewed, test=saved.test, planes=saved.planes, predicted=saved.predicted,
                              annotated=saved.annotated)
        restore_view(self.session, entry.state)
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
        self._show_start_point()
        self.series_changed.emit()
        self.project_changed.emit()

    def _attach(self, project: Project, series_id: str) -> None:
        self._warned = False
        self.autosaver = Autosaver(self.session, project, series_id, failed=self._autosave_failed)

    def _autosave_failed(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            self.io.error(message)

    def replace_labels(self, labels: LabelMap) -> None:
        """Labels opened from a file replace the shown series' labels (saved at once, with their table); what
        the file annotates (core.annotation.label_file_annotation) is the user's annotation."""
        if self.autosaver is not None:
            self.autosaver.flush()
            self.autosaver.detach()
            self.autosaver = None
        values, reviewed, annotated = label_file_annotation(labels.labels)
        self.session.open(self.session.volume, LabelMap(values, labels.affine, labels.table), reviewed=reviewed,
                          test=self.session.test, predicted=None, annotated=annotated)  # who made a label file: not known
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
        self.runner.run("load series", project.load_image, entry,
                        on_finished=lambda volume: self.project is project and self._show(volume, project.source_path(entry), entry.kind),
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
            self.entry.state = view_state(self.session)

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
                  (s.reviewed_coronal.copy(), s.reviewed_sagittal.copy()),
                  None if s.predicted is None else s.predicted.copy(), s.annotated.copy()) if carry else None
        known = self._model_series.get(self.entry.id) if self.entry else None  # the model learnt from the image
        self.close_project()
        self._set_project(project)
        self._model_series = {}  # series ids are the project's
        if carry:
            entry = project.add_series(carry[1], carry[0], carry[2])
            project.save_labels(entry.id, *labels)
            self._model_series = {entry.id: known} if known else {}
            self._show(*carry)

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
            self._show(volume, copy.source_path(entry), entry.kind)

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
        self.runner.run("open project", project.load_image, entry,
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
        self.workspace.saved_model = None
        self.models.set_model(None)  # another project's model does not carry over
        if project.current_model:
            self.runner.run("open project model", project.load_model,
                            on_finished=lambda checkpoint: self.project is project and self._project_model_loaded(checkpoint),
                            on_failed=self.io.error)
        return True

    def _project_loaded(self, project: Project, entry: SeriesEntry, volume: Volume) -> None:
        if self._opening is not project:
            return  # another project was asked for meanwhile
        if self._switch_to(project):
            self._show(volume, project.source_path(entry), entry.kind)
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
        self.workspace.saved_model = checkpoint
        self._model_series = self._series_names()  # the project's model: trained on the project's series
        self.models.set_model(checkpoint)

    def _series_names(self) -> dict[str, str]:
        if self.project is None:
            return {}
        return {e.id: e.description or os.path.basename(e.source.rstrip(os.sep)) or e.id for e in self.project.series}

    def _on_training_started(self) -> None:
        self._training_project = self.project
        self._training_series = self._series_names()  # the shown series and the others it may read

    def _show_start_point(self) -> None:
        """Tell the panel when the current model was not trained on the shown image (and on what it was)."""
        if self.models.checkpoint is None or self.entry is None or self.entry.id in self._model_series:
            words = ""
        elif self._model_series:
            words = _names(self._model_series)
        else:
            origin = self.models.origin
            words = f"other data ({os.path.basename(origin)})" if origin else "other data"
        self.models.set_other_data(words)

    def _keep_model(self) -> None:
        checkpoint, origin = self.models.checkpoint, self.models.origin
        if checkpoint is None:
            self._model_series = {}
        elif checkpoint is not self.workspace.saved_model:
            # trained here, or opened from the project's own folder (a search's best model): the project's data
            series = self._training_series if checkpoint is self.models.last_trained and not origin else \
                self._series_names() if origin and self.project and inside(self.project.root, origin) else {}
            if self._save_model(checkpoint):
                self._model_series = dict(series)
        self._show_start_point()

    def _save_model(self, checkpoint) -> bool:
        """A newly trained or opened model is saved into the project (atomically) with its history; a
        training that ends after its project was closed saves into that project, not the open one (False:
        the open project's own model is back)."""
        target = self.project
        if checkpoint is self.models.last_trained and self._training_project is not None:
            target = self._training_project
        try:
            target = target or self._ensure_project()
            target.add_model(checkpoint)
        except (UnetguiError, OSError) as exc:
            self.io.error(f"The model could not be saved into the project: {exc}")
            return True
        if target is not self.project:
            self.io.warn("A training ended after its project was closed", [
                f"Its model was saved into {target.root}; the open project keeps its own model."])
            self.models.set_model(self.workspace.saved_model)
            return False
        self.workspace.saved_model = checkpoint
        self.project_changed.emit()
        return True

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

        self.runner.run("housekeeping", housekeeping.retire_expired, folder,
                        on_finished=done)

    # -- sample ----------------------------------------------------------------------------------
    def open_sample(self, resources: str, root: str | None = None) -> None:
        """Copy the sample study into a fresh project (resources stay read-only) and open it."""
        sample = os.path.join(resources, "sample")
        if not os.path.isdir(sample):
            self.io.error(f"The sample study is not installed ({sample} is missing).")
            return
        root = root or os.path.join(data_folder(), "samples", f"sample-{_stamp()}")
        self.io.busy.emit("Preparing the sample study...")
        self.runner.run("sample", build_sample, resources, root,
                        on_finished=self.open_project, on_failed=self.io.error, on_done=lambda: self.io.busy.emit(""))

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
