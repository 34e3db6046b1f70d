"""The series of the open project: which are annotated, which is shown; a click switches series."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from unetgui.ui.project_controller import ProjectController


class SeriesPanel(QWidget):
    def __init__(self, projects: ProjectController) -> None:
        super().__init__()
        self.projects = projects
        self.title = QLabel()
        self.list = QListWidget()
        self.list.itemClicked.connect(lambda item: projects.show_series(item.data(Qt.ItemDataRole.UserRole)))
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.list)
        projects.project_changed.connect(self.refresh)
        projects.series_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        project = self.projects.project
        self.title.setText(f"<b>{self.projects.title()}</b>" if project else "No project open")
        with QSignalBlocker(self.list):
            self.list.clear()
            for entry in project.series if project else []:
                z, y, x = entry.shape
                shown = self.projects.entry is not None and entry.id == self.projects.entry.id
                item = QListWidgetItem(f"{'> ' if shown else ''}{entry.description or entry.kind} ({entry.modality or entry.kind}, "
                                       f"{x}x{y}x{z})")
                item.setData(Qt.ItemDataRole.UserRole, entry.id)
                source = self.projects.project.source_path(entry)
                item.setToolTip(f"{source}\nretrieved from {entry.origin}" if entry.origin else source)
                self.list.addItem(item)
                if shown:
                    self.list.setCurrentItem(item)
