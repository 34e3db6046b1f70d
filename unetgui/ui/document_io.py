"""Opening images and labels: every disk read runs on a worker; warnings are shown non-modally,
errors in a readable dialog, and a bad file never takes the app down. What was read is announced
(``image_loaded``, ``labels_loaded``); the window connects them to whoever shows it (the project controller)."""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from unetgui.core.session import Session
from unetgui.core.volume import UNANNOTATED, Volume
from unetgui.formats.dicom import Series, load_series
from unetgui.formats.inputs import ImageInput, open_image, open_labels
from unetgui.ui.open_dialog import SeriesPickerDialog
from unetgui.ui.recent import RecentList
from unetgui.workers.jobs import JobRunner

RECENT_FILES = RecentList("recent")  # images and folders opened (File > Open recent)
# what File > Open labels offers; formats.inputs.open_labels reads each of them
LABEL_FILTER = ("Labels (*.nii *.nii.gz *.nrrd *.nhdr *.seg.nrrd *.dcm);;NIfTI (*.nii *.nii.gz);;"
                "NRRD and 3D Slicer segmentations (*.nrrd *.nhdr *.seg.nrrd);;DICOM-SEG (*.dcm);;All files (*)")
# what File > Open image offers (a DICOM series opens from its folder)
IMAGE_FILTER = "Images (*.nii *.nii.gz *.nrrd *.nhdr);;NIfTI (*.nii *.nii.gz);;NRRD (*.nrrd *.nhdr);;All files (*)"
IMAGE_FILES = (".nii", ".nii.gz", ".nrrd", ".nhdr")


def folder_of(series: Series) -> str:
    """The folder holding a series' files (the project finds the series again there by its UID)."""
    return os.path.commonpath([os.path.dirname(os.path.abspath(f.path)) for f in series.frames])


class DocumentIO(QObject):
    busy = Signal(str)  # a message while loading, "" when done
    recent_changed = Signal()
    image_loaded = Signal(object, str, str)  # Volume, source path, kind ("dicom", "nifti", "nrrd")
    labels_loaded = Signal(object)  # LabelMap on the open image's grid, as the file holds it (255 kept)
    note = Signal(str)  # a passing word for the status bar

    def __init__(self, parent: QWidget, session: Session, runner: JobRunner) -> None:
        super().__init__(parent)
        self.window, self.session, self.runner = parent, session, runner
        self._notes: list[QMessageBox] = []  # open non-modal messages (kept referenced)
        self.last_error = ""

    # -- recent files ----------------------------------------------------------------------------
    def recent(self) -> list[str]:
        return RECENT_FILES.items()

    def _remember(self, path: str) -> None:
        RECENT_FILES.add(path)
        self.recent_changed.emit()

    # -- entry points ----------------------------------------------------------------------------
    def open_path(self, path: str) -> None:
        """A folder opens the DICOM picker; a NIfTI or NRRD file opens as an image; a single DICOM file its folder."""
        if os.path.isdir(path):
            self.open_dicom_folder(path)
        elif path.lower().endswith(IMAGE_FILES):
            self.open_image_file(path)
        elif os.path.isfile(path):
            self.open_dicom_folder(path)
        else:
            self.error(f"{path}: no such file or folder")

    def ask_dicom_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open DICOM folder")
        if folder:
            self.open_dicom_folder(folder)

    def ask_image_file(self) -> None:
        self._ask_image_file_in("")

    def _ask_image_file_in(self, folder: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open image", folder, IMAGE_FILTER)
        if path:
            self.open_image_file(path)

    def ask_labels(self) -> None:
        if not self.session.is_open:
            self.error("Open an image first, then its labels.")
            return
        path, _ = QFileDialog.getOpenFileName(self.window, "Open labels", "", LABEL_FILTER)
        if path:
            self.open_labels(path)

    def open_retrieved(self, folder: str) -> SeriesPickerDialog:
        """A series retrieved from an archive (or found in its cache): opens without asking which series."""
        return self.open_dicom_folder(folder, single_opens=True)

    def open_dicom_folder(self, folder: str, single_opens: bool = False) -> SeriesPickerDialog:
        dialog = SeriesPickerDialog(folder, self.runner, self.window, single_opens)
        dialog.accepted.connect(lambda: self.load_series(dialog.chosen, folder))
        # no DICOM there: the user asked for File > Open NIfTI or NRRD image, starting in that folder
        start = folder if os.path.isdir(folder) else os.path.dirname(folder)
        dialog.open_image_requested.connect(lambda: self._ask_image_file_in(start))
        dialog.open()
        return dialog

    def may_replace_document(self) -> bool:
        """True when nothing would be lost, or the user agrees to discard the edits of the open image
        (opening another image never loses edits: they stay in the project; replacing labels would)."""
        if not (self.session.is_open and self.session.history.can_undo()):
            return True
        answer = QMessageBox.question(
            self.window, "unetgui", "The open image has label edits that are not exported yet.\n"
            "Open the new file and discard them?",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Discard

    def load_series(self, series: Series, remember: str | None = None) -> None:
        self.busy.emit(f"Loading {series.slice_count} slices...")
        self.runner.run("load series", load_series, series,
                        on_finished=lambda volume: self._show(volume, remember, folder_of(series), "dicom"), on_failed=self.error,
                        on_done=lambda: self.busy.emit(""))

    def open_image_file(self, path: str) -> None:
        """A NIfTI or NRRD image file (formats.inputs.open_image, as the CLI reads it)."""
        self.busy.emit(f"Loading {os.path.basename(path)}...")
        self.runner.run("load image", open_image, path,
                        on_finished=lambda image: self._show(image.volume, path, path, image.kind), on_failed=self.error,
                        on_done=lambda: self.busy.emit(""))

    def open_labels(self, path: str) -> None:
        """Labels for the open image, read like the CLI reads them (NIfTI, NRRD, .seg.nrrd, DICOM-SEG); the
        reader's notes (a {0, 255} mask read as binary, overlapping segments, an unused table) are shown."""
        volume = self.session.volume
        image = ImageInput(path="", volume=volume, kind="image")  # the grid the labels must land on

        def show(result) -> None:
            labels, notes = result
            if self.session.volume is not volume or not self.may_replace_document():
                return  # another image was opened meanwhile, or the user keeps the edits
            # label files are annotations (core.annotation.label_file_annotation): a sparse file's voxels that are
            # not 255, every voxel of a dense file; no prediction overwrites them
            self.labels_loaded.emit(labels)
            if not (labels.labels == UNANNOTATED).any():
                self.note.emit(f"{os.path.basename(path)} has no 255 (\"not annotated\"): every slice counts as "
                               "reviewed, so Segment leaves them as they are; R on a slice gives it back to the model")
            if notes:
                self.warn("Labels loaded with warnings", notes)

        self.runner.run("load labels", open_labels, path, image, on_finished=show, on_failed=self.error)

    # -- results ---------------------------------------------------------------------------------
    def _show(self, volume: Volume, remember: str | None, source: str, kind: str) -> None:
        self.image_loaded.emit(volume, source, kind)
        if remember:
            self._remember(remember)
        if volume.warnings:
            self.warn("The image was loaded with warnings", volume.warnings)

    def warn(self, title: str, lines) -> None:
        self._message(QMessageBox.Icon.Warning, title, "\n\n".join(f"- {line}" for line in lines))

    def error(self, message: str) -> None:
        """A readable, non-blocking error dialog; the document is left as it was."""
        self.last_error = message
        self._message(QMessageBox.Icon.Critical, "This could not be opened.", message)

    def _message(self, icon: QMessageBox.Icon, title: str, details: str) -> None:
        box = QMessageBox(icon, "unetgui", title, QMessageBox.StandardButton.Ok, self.window)
        box.setInformativeText(details)
        box.setModal(False)  # the user can keep working; the message stays until closed
        box.finished.connect(lambda _: self._notes.remove(box) if box in self._notes else None)
        self._notes.append(box)  # kept referenced while shown
        box.show()
