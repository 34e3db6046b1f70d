"""The main window: assembles the view, panels, menus and status bar. It holds no document state."""

from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget, QFileDialog, QFrame, QLabel, QMainWindow, QMessageBox, QScrollArea, QSizePolicy, QVBoxLayout, QWidget,
)

from unetgui import __version__
from unetgui.core.geometry import voxel_to_world
from unetgui.core.session import Session
from unetgui.project.workspace import Workspace
from unetgui.ui.actions import Actions
from unetgui.ui.document_io import DocumentIO
from unetgui.ui.label_panel import LabelPanel
from unetgui.ui.model_controller import ModelController
from unetgui.ui.plane_views import go_to_structure
from unetgui.ui.project_controller import ProjectController
from unetgui.ui.series_panel import SeriesPanel
from unetgui.ui.stats_panel import StatsPanel
from unetgui.ui.tool_panel import ToolPanel
from unetgui.ui.tool_state import ToolState
from unetgui.ui.training_panel import TrainingPanel
from unetgui.ui.view3d import View3D
from unetgui.ui.view_area import ViewArea
from unetgui.ui.welcome_panel import WelcomePanel
from unetgui.workers.jobs import JobRunner


#: the sample's next step, shown when it opens
SAMPLE_HINT = ("The sample: a CT phantom whose liver is annotated on 4 slices (green ticks on the slider), with a "
               "small model trained on them. Next: Segment volume (Ctrl+G), paint where the model is wrong (brush B, "
               "background Shift+B: only your strokes train; R makes a whole slice truth) and Train (Ctrl+T).")

class MainWindow(QMainWindow):
    def __init__(self, session: Session | None = None, runner: JobRunner | None = None, resources: str = "") -> None:
        super().__init__()
        self.resources = resources  # the app's resources folder (icon, sample study)
        self.setWindowTitle("unetgui")
        self.fit_screen()
        self.setAcceptDrops(True)
        self.session = session or Session()
        self.runner = runner or JobRunner(self)
        self.tools = ToolState()
        self.area = ViewArea(self.session, self.tools)  # one view or three linked planes, and the slider
        self.view, self.planes, self.slider, self.plane = self.area.view, self.area.planes, self.area.slider, self.area.plane
        self.actions = Actions(self, self.session, self.tools, self.view)
        self.io = DocumentIO(self, self.session, self.runner)
        self.workspace = Workspace()  # the open project and shown series: the project controller's to change
        self.models = ModelController(self.session, self.runner, self, self.workspace.training_sources)
        self.session.listeners.reviewed_changed.append(self.models.reviewed_changed)
        self.projects = ProjectController(self, self.session, self.runner, self.io, self.models, self.workspace)
        self.io.image_loaded.connect(self.projects.show_volume)  # asks whether it joins an open project
        self.io.labels_loaded.connect(self.projects.replace_labels)
        self.welcome = WelcomePanel()
        self.welcome.open_dicom.connect(self.io.ask_dicom_folder)
        self.welcome.open_project.connect(self.projects.ask_open)
        self.welcome.try_sample.connect(self.open_sample)
        self.projects.ready.connect(self._project_ready)
        self.welcome.open_recent.connect(self.projects.open_project)
        self.projects.project_changed.connect(lambda: self.welcome.set_recent(self.projects.recent()))
        self.projects.project_changed.connect(self._update_title)
        self.welcome.set_recent(self.projects.recent())
        self.setCentralWidget(self._centre())
        self._docks()
        self._menus()
        self._status()
        self.session.listeners.volume_changed.append(self._on_volume_changed)
        self.session.listeners.closed.append(self._on_closed)

    def fit_screen(self, free=None) -> None:
        """Open at 85 % of the screen's free area ``free`` (default: the primary screen's), at least 1400 x 900 but
        never larger than the free area less the window frame: a 1280 x 800 laptop gets all of it, 4K 3264 x 1836."""
        if free is None:
            screen = QGuiApplication.primaryScreen()
            free = screen.availableGeometry() if screen is not None else None
        if free is None or free.width() <= 0:
            self.resize(1400, 900)
            return
        width = min(free.width() - 16, max(1400, int(0.85 * free.width())))
        height = min(free.height() - 40, max(900, int(0.85 * free.height())))
        self.resize(max(width, 640), max(height, 480))

    def _centre(self) -> QWidget:
        centre = QWidget()
        layout = QVBoxLayout(centre)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.welcome, 1)
        layout.addWidget(self.area, 1)
        self.area.hide()  # nothing to view on the welcome page
        return centre

    def set_three_planes(self, on: bool) -> None:
        self.area.set_three_planes(on)

    def _docks(self) -> None:
        self.training_panel = TrainingPanel(self.session, self.models)
        self.docks: dict[str, QDockWidget] = {}
        for title, widget, area in (("Labels", LabelPanel(self.session, self.tools), Qt.DockWidgetArea.RightDockWidgetArea),
                                    ("Tools", ToolPanel(self.tools, self.view, self.actions), Qt.DockWidgetArea.RightDockWidgetArea),
                                    ("Segment and train", self.training_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
                                    ("Project", SeriesPanel(self.projects), Qt.DockWidgetArea.RightDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(title)
            scroll = QScrollArea()  # a panel taller than a laptop screen scrolls instead of enlarging the window
            scroll.setWidget(widget)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            # never narrower than the panel (no control clipped at the side), room for the vertical scroll bar
            scroll.setMinimumWidth(widget.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
            if title == "Labels":  # a few rows (the table scrolls): the tools below get the rest of the column
                scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
            dock.setWidget(scroll)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            self.addDockWidget(area, dock)
            self.docks[title] = dock
        self.tabifyDockWidget(self.docks["Labels"], self.docks["Project"])  # one column of height for the tools
        self.docks["Labels"].raise_()
        # the 3-D view beside the slice view and the statistics below it: hidden until asked for (View menu), they
        # build surfaces and measure only while shown
        self.view3d = View3D(self.session, self.tools, self.runner)
        self.stats = StatsPanel(self.session, self.tools, self.runner)
        for title, widget, area, key in (("3-D view", self.view3d, Qt.DockWidgetArea.RightDockWidgetArea, "5"),
                                         ("Statistics", self.stats, Qt.DockWidgetArea.BottomDockWidgetArea, "M")):
            dock = QDockWidget(title, self)
            dock.setObjectName(title)
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                             | QDockWidget.DockWidgetFeature.DockWidgetClosable)
            self.addDockWidget(area, dock)
            dock.hide()
            toggle = dock.toggleViewAction()
            toggle.setText(f"{title} panel")
            toggle.setShortcut(QKeySequence(key))
            self.addAction(toggle)  # the shortcut works wherever the focus is
            setattr(self.actions, "show_3d" if title == "3-D view" else "show_statistics", toggle)  # listed with the rest
            self.docks[title] = dock
        self.docks["3-D view"].visibilityChanged.connect(self._size_3d_view)

    def _size_3d_view(self, visible: bool) -> None:
        """The first time the 3-D view opens in the right column, give it room: at least 420 px wide and most of
        the column's height (the tool panel scrolls); later the user's own sizes stay."""
        dock = self.docks["3-D view"]
        if not visible or dock.isFloating() or getattr(self, "_3d_sized", False):
            return
        self._3d_sized = True
        column = self.centralWidget().height()
        self.resizeDocks([dock], [max(420, dock.width())], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["Tools"], dock], [int(column * 0.4), int(column * 0.6)], Qt.Orientation.Vertical)

    def _menus(self) -> None:
        a = self.actions
        a.open_dicom.triggered.connect(self.io.ask_dicom_folder)
        a.open_nifti.triggered.connect(self.io.ask_image_file)
        a.open_labels.triggered.connect(self.io.ask_labels)
        a.new_project.triggered.connect(self.projects.ask_new)
        a.open_project.triggered.connect(self.projects.ask_open)
        a.save_project.triggered.connect(self._save_project)
        a.save_project_as.triggered.connect(self.projects.ask_save_as)
        a.sample.triggered.connect(self.open_sample)
        a.open_archive.triggered.connect(self.show_archive)
        a.archive_nodes.triggered.connect(self.show_archive_nodes)
        a.export.triggered.connect(self.show_export)
        a.message = lambda text: self.statusBar().showMessage(text, 8000)
        a.quit.triggered.connect(self.close)
        a.shortcuts.triggered.connect(self._show_shortcuts)
        a.open_model.triggered.connect(self._ask_open_model)
        a.save_model.triggered.connect(self._ask_save_model)
        a.segment_slice.triggered.connect(self.training_panel.segment_slice.click)
        a.segment_volume.triggered.connect(self.training_panel.segment_volume.click)
        a.train.triggered.connect(self.training_panel.train_button.click)
        a.tune.triggered.connect(self.show_tune)
        a.model_card.triggered.connect(self._show_model_card)
        a.three_planes.triggered.connect(self.area.set_three_planes)
        self.area.layout_changed.connect(a.three_planes.setChecked)
        a.three_planes.setChecked(self.area.three_planes)  # the layout remembered from the last session
        a.fit.triggered.connect(self.planes.fit)
        a.go_to_structure.triggered.connect(lambda: a.message(go_to_structure(self.session, self.area.live_views())))
        self.models.segment_done.connect(self._show_device)
        a.about.triggered.connect(lambda: QMessageBox.about(self, "About unetgui", f"unetgui {__version__}\n"
                                                            "U-Net segmentation of medical images."))
        menus = {
            "&File": [a.new_project, a.open_project, a.save_project, a.save_project_as, None, a.open_dicom, a.open_nifti,
                      a.open_labels, a.open_archive, a.archive_nodes, None, a.export, None, "recent", a.sample, None, a.quit],
            "&Edit": [a.undo, a.redo, None, a.navigate, a.brush, a.background, a.eraser, a.fill, a.ruler, a.threshold,
                      a.smaller,
                      a.larger, None, a.fill_holes, a.interpolate, a.copy_previous, a.copy_next, a.mark_reviewed,
                      a.mark_empty, a.mark_test, a.review_on_edit,
                      None, a.next_suggestion],
            "&View": [a.toggle_overlay, a.outline, a.cycle_display, a.uncertainty, None, a.axial, a.coronal, a.sagittal, a.three_planes,
                      a.fit, a.go_to_structure, None, self.docks["3-D view"].toggleViewAction(),
                      self.docks["Statistics"].toggleViewAction(), None, a.previous_slice, a.next_slice],
            "&Model": [a.segment_slice, a.segment_volume, a.train, a.tune, None, a.model_card, a.open_model, a.save_model],
            "&Help": [a.shortcuts, a.about],
        }
        for title, items in menus.items():
            menu = self.menuBar().addMenu(title)
            for item in items:
                if item is None:
                    menu.addSeparator()
                elif item == "recent":
                    self.recent_menu = menu.addMenu("Open &recent")
                    self.io.recent_changed.connect(self._fill_recent)
                    self._fill_recent()
                else:
                    menu.addAction(item)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.io.recent():
            self.recent_menu.addAction(path, lambda p=path: self.io.open_path(p))
        self.recent_menu.setEnabled(bool(self.io.recent()))

    def _status(self) -> None:
        self.position = QLabel()
        self.device = QLabel()
        self.device.setContentsMargins(16, 0, 0, 0)  # a long message ends clear of the image's size, not against it
        self.statusBar().addWidget(self.position, 1)
        self.statusBar().addPermanentWidget(self.device)
        for view in self.area.views:
            view.hover_changed.connect(self._on_hover)
            view.before_paint = lambda drag: self._name_first_label(drag)
        self.io.busy.connect(lambda text: self.statusBar().showMessage(text) if text else self.statusBar().clearMessage())
        self.io.note.connect(lambda text: self.statusBar().showMessage(text, 12000))

    def _name_first_label(self, drag: bool) -> bool:
        """The first stroke on an image without labels asks the label's name (and codes). A drag whose press
        opened the question paints nothing: its release went to the dialog; the next one paints."""
        from unetgui.ui.label_prompt import ask_label_name, needs_name

        asked = needs_name(self.session)
        if not ask_label_name(self, self.session):
            return False
        if asked and drag:
            self.statusBar().showMessage(f"Painting {self.session.table.get(self.session.active_label).name}", 4000)
            return False
        return True

    def _on_volume_changed(self) -> None:
        self.welcome.hide()
        self.area.show()
        if self.tools.uncertainty_visible:  # the last image's uncertainty map does not stay on for this one
            self.tools.set_overlay(uncertainty=False)
        v = self.session.volume
        z, y, x = v.shape
        sz, sy, sx = v.spacing
        self.device.setText(f"{v.modality or 'image'}  {x} x {y} x {z}  ({sx:.2f} x {sy:.2f} x {sz:.2f} mm)")
        self._update_title()

    def _show_device(self) -> None:  # after a segmentation: where it ran and, if it finished, how fast
        rate = self.models.last_rate
        self.device.setText(self.models.device_name + ("" if rate is None else f"  |  {rate:,.0f} slices/s"))

    def _on_closed(self) -> None:
        self.area.hide()
        self.welcome.show()
        self.device.setText("")
        self._update_title()

    def _update_title(self) -> None:
        parts = [self.projects.title()]
        if self.session.is_open:
            v = self.session.volume
            parts.append(v.info.series_description or v.modality or "image")
        self.setWindowTitle(" - ".join(["unetgui"] + [p for p in parts if p]))

    def open_sample(self) -> None:
        self._sample_opening = True
        self.projects.open_sample(self.resources)

    def _project_ready(self) -> None:
        """The sample tells a new user the next step (until the next status replaces it)."""
        if getattr(self, "_sample_opening", False):
            self._sample_opening = False
            self.training_panel.status.setText(SAMPLE_HINT)

    def _save_project(self) -> None:
        if self.projects.project is None:
            self.statusBar().showMessage("Nothing to save yet: open an image or a project", 4000)
            return
        if self.projects.untitled:  # an untitled project lives in the app's data folder: ask where it goes
            self.projects.ask_save_as()
            return
        self.projects.save()
        self.statusBar().showMessage(f"Saved {self.projects.project.root} (edits are also saved automatically)", 4000)

    def show_tune(self) -> None:
        """Model > Tune...: the search's study and best model go into the project (or the app's data folder)."""
        from unetgui.ui.project_controller import data_folder
        from unetgui.ui.tune_dialog import TuneDialog

        if not self.session.is_open:
            self.statusBar().showMessage("Open an image first", 4000)
            return
        project = self.projects.project
        folder = project.path("tune") if project is not None else os.path.join(data_folder(), "tune")
        self.tune_dialog = TuneDialog(self, self.models, folder, self.training_panel.apply_tuned)
        self.tune_dialog.show()

    def show_archive(self) -> None:
        """File > Open from archive: a retrieved (or cached) series opens like a DICOM folder and joins the project."""
        from unetgui.ui.archive_dialog import ArchiveDialog

        self.archive_dialog = ArchiveDialog(self, self.runner)
        self.archive_dialog.open_folder.connect(self.io.open_retrieved)
        self.archive_dialog.show()

    def show_archive_nodes(self) -> None:
        from unetgui.ui.nodes_dialog import NodesDialog

        self.nodes_dialog = NodesDialog(self, self.runner)
        self.nodes_dialog.show()

    def show_export(self) -> None:
        from unetgui.ui.export_dialog import ExportDialog

        if not self.session.is_open:
            self.statusBar().showMessage("Open an image first", 4000)
            return
        self.export_dialog = ExportDialog(self, self.session, self.runner, self.models, self.projects)
        self.export_dialog.show()

    def _on_hover(self, voxel) -> None:
        if voxel is None:
            self.position.setText("")
            return
        z, y, x = voxel
        world = voxel_to_world(self.session.volume.affine, np.asarray([z, y, x]))
        value = self.session.volume.voxels[z, y, x]
        unit = " HU" if self.session.volume.modality == "CT" else ""
        label = self.session.labels.labels[z, y, x]
        name = self.session.table.get(int(label)).name if self.session.table.get(int(label)) else ("-" if label == 0 else str(label))
        self.position.setText(f"voxel (x {x}, y {y}, z {z})   RAS ({world[0]:.1f}, {world[1]:.1f}, {world[2]:.1f}) mm   "
                              f"value {value:g}{unit}   label {name}")

    def _show_model_card(self) -> None:
        """Model > Model card (Ctrl+I): labels, training data, metrics; plain text (names come from files)."""
        box = QMessageBox(QMessageBox.Icon.Information, "Model card", self.models.card(), parent=self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.open()
        self.model_card_box = box

    def _ask_open_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open model", "", "unetgui model (*.unetgui);;All files (*)")
        if path:
            self.models.open_model(path)

    def _ask_save_model(self) -> None:
        if self.models.checkpoint is None:
            QMessageBox.information(self, "unetgui", "There is no model yet: train one first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.unetgui", "unetgui model (*.unetgui)")
        if path:
            self.models.save_model(path)

    def _show_shortcuts(self) -> None:
        from unetgui.ui.shortcuts_dialog import ShortcutsDialog

        self.shortcuts_dialog = ShortcutsDialog(self, self.actions.listing())
        self.shortcuts_dialog.show()

    # -- drag and drop, close ------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])

    def open_path(self, path: str) -> None:
        """A project folder opens as a project; anything else as an image (DICOM folder, NIfTI)."""
        if os.path.isfile(os.path.join(path, "project.json")):
            self.projects.open_project(path)
        else:
            self.io.open_path(path)

    #: how long closing waits for cancelled work to stop (a read from a stalled network drive cannot be cancelled)
    CLOSE_WAIT_MS = 15_000

    def closeEvent(self, event) -> None:  # noqa: N802
        stopped = self.runner.shutdown(self.CLOSE_WAIT_MS)  # cancel, wait: no "QThread destroyed while running"
        try:
            self.projects.close_project()  # the last edits into the snapshot, the lock removed: a clean close
            super().closeEvent(event)
        finally:
            if not stopped:
                self._exit_now()

    def _exit_now(self) -> None:
        """A worker still blocks after the wait: the edits are saved, so end the process rather than hang
        (Qt aborts when a running thread is destroyed at exit)."""
        from unetgui.core import crashlog

        crashlog.write_log(TimeoutError(f"work still running {self.CLOSE_WAIT_MS} ms after close: "
                                        f"{', '.join(self.runner.running_names())}"), "close")
        QSettings().sync()  # os._exit skips the settings' own flush (recent projects, folders)
        os._exit(0)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        step = {Qt.Key.Key_Up: 1, Qt.Key.Key_Right: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_Left: -1}.get(event.key())
        if step is not None and self.session.is_open:
            self.view.step_slice(step)
        else:
            super().keyPressEvent(event)
