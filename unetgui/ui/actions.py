"""Every user action with its shortcut, wired to the session, the tools and the view.

The main window puts them in menus; panels reuse them as buttons; Help > Keyboard shortcuts lists them.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QWidget

from unetgui.core.session import Session
from unetgui.ui.slice_view import SliceView
from unetgui.ui.tool_state import ToolState


class Actions:
    def __init__(self, parent: QWidget, session: Session, tools: ToolState, view: SliceView) -> None:
        self.session, self.tools, self.view = session, tools, view
        self.message = lambda text: None  # the main window shows these in its status bar

        def make(text: str, shortcut: str | QKeySequence.StandardKey | None = None, slot=None, checkable=False) -> QAction:
            action = QAction(text, parent)
            if shortcut is not None:
                action.setShortcut(QKeySequence(shortcut))
            if slot is not None:
                action.triggered.connect(slot)
            action.setCheckable(checkable)
            parent.addAction(action)  # shortcuts work wherever the focus is in the window
            return action

        # file (slots connected by the main window, which owns the opening flows)
        self.open_dicom = make("Open &DICOM folder...", QKeySequence.StandardKey.Open)
        self.open_nifti = make("Open &NIfTI or NRRD image...", "Ctrl+Shift+O")
        self.open_labels = make("Open &labels (NIfTI, NRRD, Slicer, DICOM-SEG)...", "Ctrl+L")
        self.open_archive = make("Open from &archive (PACS, DICOMweb)...", "Ctrl+Shift+A")
        self.archive_nodes = make("Archive &nodes...")
        self.new_project = make("&New project...", "Ctrl+Shift+N")
        self.open_project = make("Open &project...", "Ctrl+Shift+P")
        self.save_project = make("&Save project", QKeySequence.StandardKey.Save)
        self.save_project_as = make("Save project &as...", "Ctrl+Shift+S")
        self.export = make("&Export...", "Ctrl+E")
        self.sample = make("Open the sa&mple study")
        self.quit = make("&Quit", QKeySequence.StandardKey.Quit)
        # edit
        self.undo = make("Undo", "Ctrl+Z", lambda: session.undo())
        self.redo = make("Redo", "Ctrl+Shift+Z", lambda: session.redo())
        self.redo_alt = make("Redo (alternative)", "Ctrl+Y", lambda: session.redo())
        group = QActionGroup(parent)
        self.navigate = make("Navigate", "V", lambda: setattr(tools, "tool", "navigate"), True)
        self.brush = make("Brush", "B", lambda: setattr(tools, "tool", "brush"), True)
        self.brush.setToolTip("Brush (B): paints the active label; the painted voxels are your annotation")
        self.background = make("Background", "Shift+B", lambda: setattr(tools, "tool", "background"), True)
        self.background.setToolTip("Background brush (Shift+B): marks voxels as none of the labels, where the model "
                                   "painted a structure that is not there; training learns from them")
        self.eraser = make("Eraser", "E", lambda: setattr(tools, "tool", "eraser"), True)
        self.eraser.setToolTip("Eraser (E): removes the active label and your annotation under it (training "
                               "leaves those voxels out; to say \"not this structure\", use Background)")
        self.fill = make("Flood fill", "F", lambda: setattr(tools, "tool", "fill"), True)
        self.ruler = make("Ruler", "D", lambda: setattr(tools, "tool", "ruler"), True)
        self.ruler.setToolTip("Ruler (D): drag to measure a distance in mm on the shown plane; a click takes it away")
        for action in (self.navigate, self.brush, self.background, self.eraser, self.fill, self.ruler):
            group.addAction(action)
        tools.tool_changed.connect(self._show_tool)
        tools.tool_changed.connect(self._explain_tool)
        self._show_tool(tools.tool)
        self.smaller = make("Smaller brush", "[", lambda: setattr(tools, "brush_size", tools.brush_size - max(1, tools.brush_size // 8)))
        self.larger = make("Larger brush", "]", lambda: setattr(tools, "brush_size", tools.brush_size + max(1, tools.brush_size // 8)))
        self.threshold = make("Threshold brush", "T", lambda on: tools.set_threshold(on), True)
        self.fill_holes = make("Fill holes", "Shift+F", lambda: self._if_open(session.fill_holes))
        self.interpolate = make("Interpolate", "I", lambda: self._if_open(session.interpolate))
        self.copy_previous = make("Copy previous", "C", lambda: self._if_open(lambda: session.copy_from(session.index - 1)))
        self.copy_next = make("Copy next", "Shift+C", lambda: self._if_open(lambda: session.copy_from(session.index + 1)))
        self.mark_reviewed = make("Reviewed", "R", self._toggle_reviewed)
        self.mark_empty = make("Nothing here", "X", lambda: self._if_open(session.mark_empty))
        self.mark_empty.setToolTip("Nothing here (X): the shown slice has none of the structures. Clears it and marks "
                                   "it reviewed, so training learns what the structure is not")
        self.mark_test = make("Test slice", "Shift+R", self._toggle_test)
        self.review_on_edit = make("Edits mark the plane reviewed", None, lambda on: session.set_review_on_edit(on), True)
        self.review_on_edit.setToolTip("On: any edit makes its whole plane ground truth for training, the model's "
                                       "uncorrected prediction included. Off (default): only the voxels you paint "
                                       "train; mark a whole plane with R")
        session.listeners.reviewed_changed.append(lambda: self.review_on_edit.setChecked(session.review_on_edit))
        # view
        self.toggle_overlay = make("Show labels", "H", lambda on: tools.set_overlay(visible=on), True)
        self.toggle_overlay.setChecked(True)
        tools.overlay_changed.connect(lambda: self.toggle_overlay.setChecked(tools.overlay_visible))
        self.outline = make("Outline only", "O", lambda on: tools.set_overlay(outline=on), True)
        self.cycle_display = make("Show annotation / prediction", "A", self._cycle_display)
        self.cycle_display.setToolTip("A: show your annotation and the model's prediction, the annotation only, or "
                                      "the prediction only")
        self.uncertainty = make("Show model uncertainty", "U", self._show_uncertainty, True)
        tools.overlay_changed.connect(lambda: self.uncertainty.setChecked(tools.uncertainty_visible))
        self.next_suggestion = make("Next slice to correct", "N", self._next_suggestion)
        self.previous_slice = make("Previous slice", "PgDown", lambda: view.step_slice(-1))
        self.next_slice = make("Next slice", "PgUp", lambda: view.step_slice(1))
        self.axial = make("Axial", "1", lambda: view.set_plane("axial"))
        self.coronal = make("Coronal", "2", lambda: view.set_plane("coronal"))
        self.sagittal = make("Sagittal", "3", lambda: view.set_plane("sagittal"))
        self.fit = make("Fit to window", "Ctrl+0", view.fit)
        self.three_planes = make("Three linked planes", "4", checkable=True)  # connected by the main window
        self.go_to_structure = make("Go to label", "J")
        self.go_to_structure.setToolTip("Go to label (J): centre the views on the active label and zoom to it")
        # model (slots connected by the main window)
        self.open_model = make("&Open model...")
        self.save_model = make("&Save model as...")
        self.segment_slice = make("Segment &slice", "G")
        self.segment_volume = make("Segment &volume", "Ctrl+G")
        self.train = make("&Train / stop", "Ctrl+T")
        self.tune = make("T&une...")
        self.model_card = make("Model &card...", "Ctrl+I")
        self.shortcuts = make("&Keyboard shortcuts", QKeySequence.StandardKey.HelpContents)
        self.about = make("&About unetgui")

    def _show_tool(self, name: str) -> None:
        {"navigate": self.navigate, "brush": self.brush, "background": self.background, "eraser": self.eraser,
         "fill": self.fill, "ruler": self.ruler}[name].setChecked(True)

    def _explain_tool(self, name: str) -> None:
        """What the eraser teaches when only the strokes train: nothing (the tool that says "not this" is
        Background)."""
        if name == "eraser" and not self.session.review_on_edit:
            self.message("Eraser: removes the label and your annotation (those voxels no longer train). To teach "
                         "\"not this structure\" where the model is wrong, paint it with Background (Shift+B)")

    def _cycle_display(self) -> None:
        names = {"both": "annotation and prediction", "annotation": "annotation only", "prediction": "prediction only"}
        order = list(names)
        display = order[(order.index(self.tools.display) + 1) % len(order)]
        self.tools.set_overlay(display=display)
        self.message(f"Showing {names[display]} (A)")

    def _show_uncertainty(self, on: bool) -> None:
        """U: the model's uncertainty over the image; before a segmentation there is none: say so, show nothing."""
        if on and (not self.session.is_open or self.session.uncertainty is None):
            self.message("No model uncertainty yet: segment the volume first (Ctrl+G), then U shows where the model is unsure")
            on = False
        self.tools.set_overlay(uncertainty=on)

    def _if_open(self, fn) -> None:
        if self.session.is_open:
            fn()

    def _next_suggestion(self) -> None:
        """Jump to the unreviewed plane (of the shown axis) where a correction should help the model most."""
        if not self.session.is_open:
            return
        plane = ("slice", "coronal plane", "sagittal plane")[self.session.axis]
        picks = self.session.suggestions(1)
        if picks:
            self.session.set_index(picks[0].slice)
            self.message(f"{plane.capitalize()} {picks[0].slice + 1}: the most uncertain unreviewed {plane} "
                         f"(score {picks[0].score:.0f}); paint where it is wrong (or R: all of it right), N goes on")
        elif self.session.axis:
            self.message(f"No suggestion: segment the whole volume first (Ctrl+G), or every segmented {plane} is reviewed")
        else:
            self.message("No suggestion: segment the volume first (Ctrl+G), or every segmented slice is reviewed")

    def _toggle_reviewed(self) -> None:
        if self.session.is_open:
            s = self.session
            s.set_reviewed(s.index, not s.reviewed_in(s.axis)[s.index], s.axis)

    def _toggle_test(self) -> None:
        if not self.session.is_open:
            return
        if self.session.axis:
            self.message("Test slices are axial slices: show the axial plane (1) to mark one")
            return
        z = self.session.current_slice
        self.session.set_test(z, not self.session.test[z])

    def listing(self) -> list[tuple[str, str]]:
        """(action, shortcut) pairs for the shortcuts dialog, plus the mouse and arrow keys."""
        rows = [(a.text().replace("&", "").rstrip("."), a.shortcut().toString(QKeySequence.SequenceFormat.NativeText))
                for a in vars(self).values() if isinstance(a, QAction) and not a.shortcut().isEmpty()]
        rows += [("Previous / next slice", "Down / Up, Left / Right, mouse wheel"), ("Zoom", "Ctrl + mouse wheel"),
                 ("Pan", "middle drag (or left drag with Navigate)"), ("Window / level", "right drag"),
                 ("Paint with the active tool", "left drag")]
        return rows
