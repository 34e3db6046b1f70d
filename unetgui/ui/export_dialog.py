"""File > Export: label PNGs, overlay PNGs, NIfTI, 3D Slicer .seg.nrrd, DICOM-SEG, metrics CSV, surface meshes and the model,
into a folder, named without patient data unless asked; runs on a worker with a progress bar and Cancel.
The folder starts where a user looks for it (:func:`default_export_folder`); after an export *Open folder*
shows the files."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace

from PySide6.QtCore import QSettings, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressBar,
    QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from unetgui.core.errors import FormatError, UnetguiError
from unetgui.core.session import Session
from unetgui.core.volume import LabelMap
from unetgui.formats.export import ExportOptions, dicom_seg_problem, export_basename
from unetgui.formats.mesh import MAX_DECIMATE, MAX_SMOOTHING, MESH_FORMATS, SMOOTHING, SPACES
from unetgui.net.nodes import load_nodes
from unetgui.project.store import inside
from unetgui.tasks.archive import send
from unetgui.tasks.export import ExportResult, export_document
from unetgui.ui.model_controller import ModelController
from unetgui.ui.nodes_dialog import password_for
from unetgui.ui.project_controller import ProjectController, data_folder
from unetgui.workers.jobs import Job, JobRunner


def _writable(folder: str) -> bool:
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)


def default_export_folder(projects: ProjectController) -> str:
    """Where an export goes by default: the open project's ``exports`` folder; for an untitled project (it
    lives hidden in the app's data folder) beside the image source, i.e. the DICOM folder's parent or the
    NIfTI file's folder, when that is writable; else the home folder."""
    project, entry = projects.project, projects.entry
    if project is not None and not projects.untitled:
        return project.path("exports")
    if project is not None and entry is not None:
        beside = os.path.dirname(project.source_path(entry))
        if _writable(beside) and not inside(data_folder(), beside):
            return beside
    return os.path.expanduser("~")


def _settings_key(projects: ProjectController) -> str:
    """The QSettings key remembering the folder chosen for this document (the project, else the image source)."""
    project, entry = projects.project, projects.entry
    if project is None:
        return "export_folder/none"
    what = project.source_path(entry) if projects.untitled and entry is not None else project.root
    return "export_folder/" + hashlib.sha1(os.path.normcase(what).encode()).hexdigest()[:16]


class ExportDialog(QDialog):
    def __init__(self, parent: QWidget, session: Session, runner: JobRunner, models: ModelController,
                 projects: ProjectController) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.session, self.runner, self.models, self.projects = session, runner, models, projects
        self.job: Job | None = None
        self.written: list[str] = []
        self._exists: list[str] | None = None  # the files of an earlier export this one would replace (see _done)
        self.pending_send = None  # (node, SEG paths): sent once the export's job is over
        volume = session.volume
        self.exported_folder = ""  # where the last export that succeeded wrote its files
        self.folder = QLineEdit(str(QSettings().value(_settings_key(projects), "")) or default_export_folder(projects))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.label_png = QCheckBox("Label PNG per slice (pixel values 0..K = label values)")
        self.overlay_png = QCheckBox("Colour overlay PNG per slice (image with labels)")
        self.nifti = QCheckBox("NIfTI labels (.nii.gz) on the source geometry: aligned in 3D Slicer, ITK-SNAP")
        self.seg_nrrd = QCheckBox("3D Slicer segmentation (.seg.nrrd) with the label names and colours")
        self.image_nifti = QCheckBox("NIfTI image (.nii.gz)")
        self.annotation = QCheckBox("Annotation NIfTI: what you annotated, 255 elsewhere (a sparse annotation)")
        self.annotation.setToolTip("The reviewed slices and your strokes with their labels, 255 (\"not annotated\") "
                                   "everywhere else: nnU-Net's ignore label; reopened here it annotates the same voxels")
        self.dicom_seg = QCheckBox("DICOM-SEG referencing the source series")
        self.metrics = QCheckBox("Metrics CSV (segment statistics per label and slice; last evaluation)")
        # surface meshes: format, coordinate system, smoothing and decimation (recorded in <name>_meshes.json)
        self.mesh = QCheckBox("Surface mesh per label")
        self.mesh.setToolTip("A closed surface of each label in world millimetres, for 3-D printing, planning and "
                             "simulation; its settings are recorded beside it in <name>_meshes.json")
        self.mesh_format = QComboBox()
        self.mesh_format.addItems(["STL (binary)", "OBJ", "PLY (binary)"])
        self.mesh_space = QComboBox()
        self.mesh_space.addItems(["LPS (3D Slicer, DICOM)", "RAS (NIfTI)"])
        self.mesh_space.setToolTip("The coordinate system of the vertices, stated in each file (SPACE=...); 3D Slicer "
                                   "assumes LPS for STL and OBJ")
        self.mesh_smoothing = QSpinBox(minimum=0, maximum=MAX_SMOOTHING, value=SMOOTHING)
        self.mesh_smoothing.setToolTip("Taubin smoothing iterations: 0 keeps the voxel staircase")
        self.mesh_decimate = QSpinBox(minimum=0, maximum=int(MAX_DECIMATE * 100), value=0, suffix=" %")
        self.mesh_decimate.setToolTip("Share of triangles to remove (quadric decimation); a surface that decimating "
                                      "would open is kept whole")
        self.mesh_row = QWidget()
        mesh_row = QHBoxLayout(self.mesh_row)
        mesh_row.setContentsMargins(22, 0, 0, 0)
        for text, widget in (("", self.mesh_format), ("in", self.mesh_space), ("smoothing", self.mesh_smoothing),
                             ("decimate", self.mesh_decimate)):
            if text:
                mesh_row.addWidget(QLabel(text))
            mesh_row.addWidget(widget)
        mesh_row.addStretch(1)
        self.mesh.toggled.connect(self.mesh_row.setEnabled)
        # send the DICOM-SEG back to an archive (tasks/archive.send: C-STORE or STOW-RS); the files stay local too
        self.send_to = QComboBox()
        try:
            self.archive_nodes = load_nodes()
        except UnetguiError:
            self.archive_nodes = []
        self.send_to.addItems(["no: keep it local"] + [n.describe() for n in self.archive_nodes])
        self.send_to.setToolTip("After the export, store the DICOM-SEG in this archive: it references the series' "
                                "UIDs, so the archive files it under the same study")
        self.send_row = QWidget()
        send_row = QHBoxLayout(self.send_row)
        send_row.setContentsMargins(22, 0, 0, 0)
        send_row.addWidget(QLabel("Send the DICOM-SEG to an archive:"))
        send_row.addWidget(self.send_to, 1)
        self.model = QCheckBox("Model file (current model)")
        self.patient = QCheckBox("Put the PatientID into the file names")
        self.patient.setToolTip("Off: file names carry no patient name or ID (safe to share)")
        for box, on in ((self.label_png, True), (self.overlay_png, False), (self.nifti, True), (self.seg_nrrd, False),
                        (self.image_nifti, False), (self.annotation, False), (self.dicom_seg, False), (self.metrics, True),
                        (self.mesh, False), (self.model, False), (self.patient, False)):
            box.setChecked(on)
        self.mesh_row.setEnabled(False)
        problem = dicom_seg_problem(volume)
        self.dicom_seg.setEnabled(problem is None)
        self.dicom_seg.setChecked(problem is None)
        self.dicom_seg_problem = QLabel(problem or "")  # why not, wrapped under the box (the dialog stays narrow)
        self.dicom_seg_problem.setWordWrap(True)
        self.dicom_seg_problem.setStyleSheet("QLabel { color: palette(mid); margin-left: 22px; }")
        self.dicom_seg_problem.setVisible(bool(problem))
        self.dicom_seg.toggled.connect(self.send_row.setEnabled)
        self.send_row.setEnabled(self.dicom_seg.isChecked())
        self.send_row.setVisible(bool(self.archive_nodes) and problem is None)
        if problem:
            self.dicom_seg.setToolTip(problem)
            self.dicom_seg.setText("DICOM-SEG: not possible for this series")
        self.model.setEnabled(self._model_path() is not None)
        self.name = QLabel()
        self.patient.toggled.connect(self._show_name)
        self._show_name()
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.job and self.job.cancel())
        self.open_folder = QPushButton("Open folder")
        self.open_folder.setToolTip("Show the exported files in the file manager")
        self.open_folder.hide()  # offered once an export has written its files
        self.open_folder.clicked.connect(self._on_open_folder_clicked)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        form = QFormLayout()
        form.addRow("Folder", folder_row)
        form.addRow("Files", self.name)
        boxes = QVBoxLayout()
        for box in (self.label_png, self.overlay_png, self.nifti, self.annotation, self.seg_nrrd, self.image_nifti,
                    self.dicom_seg, self.dicom_seg_problem, self.send_row, self.metrics, self.mesh, self.mesh_row, self.model, self.patient):
            boxes.addWidget(box)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.open_folder, self.export_button, self.cancel_button, close):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(boxes)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(640, 460)

    def _model_path(self) -> str | None:
        project = self.projects.project
        if project is not None and project.current_model and os.path.isfile(project.path(project.current_model)):
            try:
                return project.model_path(project.current_model)  # it must lie in the project's models folder
            except FormatError:
                return None
        return None

    def _show_name(self) -> None:
        self.name.setText(f"{export_basename(self.session.volume, self.patient.isChecked())}_...")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def options(self) -> ExportOptions:
        return ExportOptions(label_png=self.label_png.isChecked(), overlay_png=self.overlay_png.isChecked(),
                             nifti=self.nifti.isChecked(), seg_nrrd=self.seg_nrrd.isChecked(),
                             image_nifti=self.image_nifti.isChecked(), annotation=self.annotation.isChecked(),
                             dicom_seg=self.dicom_seg.isChecked() and self.dicom_seg.isEnabled(),
                             metrics_csv=self.metrics.isChecked(), include_patient_id=self.patient.isChecked(),
                             mesh=MESH_FORMATS[self.mesh_format.currentIndex()] if self.mesh.isChecked() else "",
                             mesh_space=SPACES[self.mesh_space.currentIndex()], mesh_smoothing=self.mesh_smoothing.value(),
                             mesh_decimate=self.mesh_decimate.value() / 100)

    def start(self, overwrite: bool = False) -> None:
        """Export on a worker (a copy of the labels: the user may keep editing meanwhile); files of an
        earlier export with the same names are replaced only after the user says so."""
        folder = os.path.expanduser(self.folder.text().strip())
        self.pending_send = None  # a send is only ever of this export's SEG
        if not folder:
            self.status.setText("Choose a folder to export into.")
            return
        s = self.session
        volume, labels = s.volume, LabelMap(s.labels.labels.copy(), s.labels.affine.copy(), s.table)
        options, evaluation = replace(self.options(), overwrite=overwrite), list(self.models.last_evaluation)
        model = self._model_path() if self.model.isChecked() else None
        provenance = s.provenance()
        annotation = s.annotation_labels() if options.annotation else None
        QSettings().setValue(_settings_key(self.projects), folder)
        self.open_folder.hide()
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Exporting...")
        self.job = self.runner.run("export", export_document, volume, labels, folder, options, evaluation or None, model,
                                   provenance, annotation=annotation, on_progress=self._progress, on_finished=self._finished,
                                   on_failed=self._failed, on_cancelled=lambda: self.status.setText(
                                       "Export cancelled: nothing was written."), on_done=self._done)

    def _progress(self, done: int, total: int, message: str) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)

    def _finished(self, result: ExportResult) -> None:
        if result.exists:  # an earlier export with these names: asked in _done, after the job is over
            self._exists = list(result.exists)
            self.status.setText("Export stopped, nothing was written: the folder holds an earlier export with these names")
            self.progress.setValue(0)  # not a finished bar while the question is asked
            return
        paths = self.written = list(result.written)
        self.progress.setValue(self.progress.maximum())
        folder = os.path.expanduser(self.folder.text().strip())
        tops: dict[str, int] = {}  # a folder of PNGs or meshes is one line, with its count
        for p in paths:
            top = os.path.relpath(p, folder).split(os.sep)[0]
            tops[top] = tops.get(top, 0) + 1
        shown = [f"{top}{os.sep} ({n} files)" if n > 1 else top for top, n in sorted(tops.items())]
        self.status.setText(f"Wrote {len(paths)} file(s) into {folder}:\n" + "\n".join(shown))
        self.exported_folder = folder
        self.open_folder.show()
        self.open_folder.setEnabled(True)
        self._send([p for p in paths if p.endswith("_seg.dcm")])

    def _send(self, segs: list[str]) -> None:
        """Store the written DICOM-SEG in the chosen archive: noted here, sent from ``_done`` once the export's job
        is over (a password prompt here would run ``_done`` inside its own event loop, before this returns)."""
        k = self.send_to.currentIndex() - 1
        if segs and 0 <= k < len(self.archive_nodes) and self.send_row.isEnabled():
            self.pending_send = (self.archive_nodes[k], segs)

    def _start_send(self) -> None:
        node, segs = self.pending_send
        self.pending_send = None
        password = password_for(self, node)
        if password is None:
            self.status.setText(self.status.text() + "\nThe DICOM-SEG was written but not sent (no password given).")
            return
        self.status.setText(self.status.text() + f"\nSending the DICOM-SEG to {node.describe()}...")
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.job = self.runner.run("archive send", send, node, segs, password,
                                   on_finished=lambda n: self._sent(f"Sent the DICOM-SEG to {node.describe()}."),
                                   on_failed=lambda m: self._sent(f"The DICOM-SEG was written but not sent: {m}"),
                                   on_cancelled=lambda: self._sent("The DICOM-SEG was written; sending it was cancelled."),
                                   on_done=self._done)

    def _sent(self, text: str) -> None:
        lines = self.status.text().split("\n")
        self.status.setText("\n".join(lines[:-1] + [text]))

    def _on_open_folder_clicked(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.exported_folder))

    def _failed(self, message: str) -> None:
        self.status.setText(f"Export failed, nothing was written: {message}")

    def _ask_overwrite(self, paths: list[str]) -> None:
        answer = QMessageBox.question(
            self, "unetgui", f"{self.folder.text().strip()} already holds {len(paths)} file(s) with the names of "
            "this export (an earlier export of this series).\n\nReplace them?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Yes:
            self.start(overwrite=True)

    def _done(self) -> None:
        self.job = None
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.pending_send:  # the send runs as its own job, once the export's is over
            self._start_send()
            return
        if self._exists is not None:  # asked here, after the job is over (done always follows finished)
            paths, self._exists = self._exists, None
            self._ask_overwrite(paths)

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.job is not None:
            self.job.cancel()
        super().closeEvent(event)
