"""File > Open from archive: query a PACS or research archive (tasks/archive.py: C-FIND or QIDO-RS) by patient,
study date, modality, accession number or study description; the series found as a table; retrieve one (C-GET,
C-MOVE or WADO-RS) with a progress bar and Cancel into the app's archive cache, whole or nothing, then open it like
any DICOM folder (it joins the project). A series retrieved before opens from the cache without asking the archive.
A line shows how much the cache holds, with Clear cache... (after a question saying how many series and how much).
Queries, retrieves and the cache's listing and clearing run on workers: the window stays usable, and a failure is one
line in the dialog."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QDialog, QFormLayout, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QMessageBox, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from unetgui.core.errors import UnetguiError
from unetgui.core.textsafe import one_line
from unetgui.net.nodes import Node, load_nodes
from unetgui.tasks.archive import Query, SeriesHit, find, retrieve
from unetgui.tasks.archive_cache import (
    CacheEntry, cache_entries, cache_folder, cache_usage, cached_series, clear_cache, size_text,
)
from unetgui.ui.nodes_dialog import NodesDialog, forget_password, password_for
from unetgui.ui.project_controller import RECENT_PROJECTS
from unetgui.workers.jobs import Job, JobRunner

MODALITIES = ("", "CT", "MR", "PT", "US", "XA", "CR", "DX", "MG", "NM", "SEG")
COLUMNS = ("Patient", "Patient ID", "Study date", "Study", "Modality", "Series", "Description", "Images", "")


class ArchiveDialog(QDialog):
    """``open_folder(path)`` asks the window to open a retrieved (or cached) series folder."""

    open_folder = Signal(str)

    def __init__(self, parent: QWidget | None, runner: JobRunner) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open from archive")
        self.runner = runner
        self.job: Job | None = None
        self.hits: list[SeriesHit] = []
        self.hits_node: Node | None = None  # the archive the hits came from: a retrieve asks that one
        self.closed = False
        self.cache: list[CacheEntry] = []  # what the cache held when last listed
        self.cache_job: Job | None = None  # listing or clearing the cache
        self.node_box = QComboBox()
        nodes_button = QPushButton("Nodes...")
        nodes_button.setToolTip("Add or edit archives (AE title, host, port, or a DICOMweb URL) and test them")
        nodes_button.clicked.connect(self._edit_nodes)
        self.patient_id, self.patient_name, self.accession, self.description = (QLineEdit() for _ in range(4))
        self.patient_name.setPlaceholderText("e.g. DOE* (wildcards * and ?)")
        self.date_from, self.date_to = QLineEdit(), QLineEdit()
        for box in (self.date_from, self.date_to):
            box.setPlaceholderText("YYYYMMDD")
            box.setMaxLength(8)
        self.modality = QComboBox()
        self.modality.addItems([m or "any" for m in MODALITIES])
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        for box in (self.patient_id, self.patient_name, self.accession, self.description, self.date_from, self.date_to):
            box.returnPressed.connect(self.search)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(6, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemDoubleClicked.connect(lambda _: self.open_selected())
        self.open_button = QPushButton("Retrieve and open")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_selected)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.job and self.job.cancel())
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)  # a count shows while retrieving (_progress), nothing while idle
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # hidden while idle (an empty bar reads as a text field), in place
        self.progress.setSizePolicy(policy)
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.cache_line = QLabel("")
        self.cache_line.setToolTip(f"Retrieved series are kept, unencrypted, in {cache_folder()}")
        self.clear_button = QPushButton("Clear cache...")
        self.clear_button.setToolTip("Remove the retrieved series from this computer")
        self.clear_button.setEnabled(False)
        self.clear_button.clicked.connect(self.ask_clear_cache)

        top = QHBoxLayout()
        top.addWidget(QLabel("Archive"))
        top.addWidget(self.node_box, 1)
        top.addWidget(nodes_button)
        grid = QGridLayout()
        for k, (text, widget) in enumerate((("Patient ID", self.patient_id), ("Patient name", self.patient_name),
                                            ("Accession", self.accession), ("Study description", self.description))):
            grid.addWidget(QLabel(text), k // 2, 2 * (k % 2))
            grid.addWidget(widget, k // 2, 2 * (k % 2) + 1)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        grid.addWidget(QLabel("Study date"), 2, 0)
        grid.addLayout(dates, 2, 1)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Modality", self.modality)
        grid.addLayout(form, 2, 2, 1, 2)
        search_row = QHBoxLayout()
        search_row.addStretch(1)
        search_row.addWidget(self.search_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        for b in (self.open_button, self.cancel_button, close):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(grid)
        layout.addLayout(search_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        cache_row = QHBoxLayout()
        cache_row.addWidget(self.cache_line, 1)
        cache_row.addWidget(self.clear_button)
        layout.addLayout(cache_row)
        layout.addLayout(buttons)
        self._fill_nodes()
        self._list_cache()
        self.resize(980, 560)

    # -- nodes ---------------------------------------------------------------------------------------------------------
    def _fill_nodes(self, select: str = "") -> None:
        try:
            self.nodes = load_nodes()
        except UnetguiError as exc:
            self.nodes = []
            self.status.setText(str(exc))
        with QSignalBlocker(self.node_box):
            current = select or self.node_box.currentText()
            self.node_box.clear()
            self.node_box.addItems([n.describe() for n in self.nodes])
            names = [n.name for n in self.nodes]
            if current in names:
                self.node_box.setCurrentIndex(names.index(current))
        self.search_button.setEnabled(bool(self.nodes))
        if not self.nodes:
            self.status.setText("No archive yet: add one with Nodes... (its AE title, host and port, or a DICOMweb URL).")

    def _edit_nodes(self) -> None:
        dialog = NodesDialog(self, self.runner)
        dialog.saved.connect(self._fill_nodes)
        dialog.exec()

    def node(self) -> Node | None:
        k = self.node_box.currentIndex()
        return self.nodes[k] if 0 <= k < len(self.nodes) else None

    # -- query ---------------------------------------------------------------------------------------------------------
    def query(self) -> Query:
        start, end = self.date_from.text().strip(), self.date_to.text().strip()
        dates = f"{start}-{end}" if (start or end) and start != end else start
        return Query(patient_id=self.patient_id.text().strip(), patient_name=self.patient_name.text().strip(),
                     study_date=dates, modality=MODALITIES[self.modality.currentIndex()],
                     accession=self.accession.text().strip(), study_description=self.description.text().strip())

    def search(self) -> None:
        node = self.node()
        if node is None or self.job is not None:
            return
        try:
            query = self.query()
        except UnetguiError as exc:
            self.status.setText(str(exc))
            return
        password = password_for(self, node)
        if password is None:
            return
        self._busy(f"Searching {node.describe()}...")
        self.job = self.runner.run("archive find", find, node, query, password,
                                   on_finished=lambda hits: self._found(hits, node),
                                   on_failed=self._failed, on_cancelled=lambda: self.status.setText("Search cancelled."),
                                   on_done=self._idle)

    def _found(self, hits: list[SeriesHit], node: Node | None = None) -> None:
        if self.closed:
            return
        self.hits = list(hits)
        self.hits_node = node or self.hits_node
        self.table.setRowCount(len(self.hits))
        for row, h in enumerate(self.hits):
            texts = (h.patient_name, h.patient_id, _date(h.study_date), h.study_description, h.modality, h.series_number,
                     h.series_description, "" if h.instances is None else str(h.instances))
            for col, text in enumerate(texts):
                self.table.setItem(row, col, QTableWidgetItem(one_line(text)))
        self._mark_cached()
        studies = len({h.study_uid for h in self.hits})
        self.status.setText(f"{len(self.hits)} series in {studies} stud{'y' if studies == 1 else 'ies'}."
                            if self.hits else "Nothing matches: widen the search (e.g. fewer fields, wildcards *).")
        if self.hits:
            self.table.selectRow(0)

    def _mark_cached(self) -> None:
        for row, h in enumerate(self.hits):
            cached = cached_series(h.series_uid) is not None
            item = QTableWidgetItem("cached" if cached else "")
            if cached:
                item.setToolTip("Retrieved before: opens from the cache without asking the archive")
            self.table.setItem(row, len(COLUMNS) - 1, item)

    def _selection_changed(self) -> None:
        self.open_button.setEnabled(self.job is None and self.selected() is not None)

    def selected(self) -> SeriesHit | None:
        rows = {i.row() for i in self.table.selectedItems()}
        return self.hits[rows.pop()] if len(rows) == 1 and self.hits else None

    # -- retrieve ------------------------------------------------------------------------------------------------------
    def open_selected(self) -> None:
        hit, node = self.selected(), self.hits_node
        if hit is None or node is None or self.job is not None or self.cache_job is not None:
            return  # (a clear of the cache may be removing this series' folder now)
        cached = cached_series(hit.series_uid, touch=True)  # opened now: the last the size cap evicts
        if cached is not None:
            self.status.setText("Opening the cached copy of the series.")
            self.open_folder.emit(cached)
            self.accept()  # the series is what the user came for: the image shows, not this dialog
            return
        password = password_for(self, node)
        if password is None:
            return
        self._busy(f"Retrieving series {hit.series_number} ({hit.modality}) from {node.describe()}...")
        self.job = self.runner.run("archive retrieve", retrieve, node, hit.study_uid, hit.series_uid, "auto", password,
                                   projects=RECENT_PROJECTS.items(),  # their series stay in the cache
                                   on_progress=self._progress, on_finished=self._retrieved, on_failed=self._failed,
                                   on_cancelled=lambda: self.status.setText("Retrieve cancelled: nothing was kept."),
                                   on_done=self._idle)

    def _retrieved(self, folder: str) -> None:
        if self.closed:  # the user closed the dialog meanwhile: they no longer asked for it to open
            return
        self._mark_cached()  # the row now says "cached"
        self.status.setText("Retrieved; opening.")
        self.open_folder.emit(folder)
        self.accept()

    # -- the cache -----------------------------------------------------------------------------------------------------
    def _list_cache(self) -> None:
        if self.cache_job is None:
            self.cache_job = self.runner.run("archive cache", cache_entries, RECENT_PROJECTS.items(),
                                             on_finished=self._cache_listed, on_failed=self.cache_line.setText,
                                             on_done=self._cache_idle)

    def _cache_listed(self, entries: list[CacheEntry]) -> None:
        self.cache = list(entries)
        try:
            usage = cache_usage(self.cache)
        except UnetguiError as exc:  # a wrong size cap setting
            self.cache_line.setText(str(exc))
            return
        self.cache_line.setText(f"Cache: {usage.series} series, {size_text(usage.bytes)} of {size_text(usage.cap)}"
                                if usage.series else "Cache: empty")

    def _cache_idle(self) -> None:
        self.cache_job = None
        self.clear_button.setEnabled(bool(self.cache))

    def ask_clear_cache(self) -> None:
        entries = self.cache
        if not entries or self.cache_job is not None or self.job is not None:
            return  # (a retrieve writes into the cache now)
        used = sum(1 for e in entries if e.projects)
        text = (f"Remove the {len(entries)} series ({size_text(sum(e.bytes for e in entries))}) retrieved from "
                "archives from this computer?")
        if used:
            text += (f"\n\n{used} of them {'is' if used == 1 else 'are'} the image of a project: the project keeps its "
                     "labels but not the image, which must be retrieved again before the series opens.")
        answer = QMessageBox.question(self, "Clear the archive cache", text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.clear_button.setEnabled(False)
        self.cache_job = self.runner.run("clear archive cache", clear_cache, on_finished=self._cache_cleared,
                                         on_failed=self.status.setText, on_done=self._cache_idle_then_list)

    def _cache_cleared(self, removed: list[CacheEntry]) -> None:
        self.status.setText(f"Removed {len(removed)} series ({size_text(sum(e.bytes for e in removed))}) from the "
                            "cache.")
        self._mark_cached()

    def _cache_idle_then_list(self) -> None:
        self.cache_job = None
        if not self.closed:
            self._list_cache()

    def _progress(self, done: int, total: int, message: str) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done} of {total} images")
        self.progress.setTextVisible(True)

    def _failed(self, message: str) -> None:
        self.status.setText(message)
        node = self.node()
        if node is not None and ("password" in message or "401" in message):
            forget_password(node)  # a mistyped password is asked again, not kept for the whole session

    def _busy(self, text: str) -> None:
        self.status.setText(text)
        self.progress.setMaximum(0)  # busy until the first progress report
        self.progress.setVisible(True)
        for b in (self.search_button, self.open_button):
            b.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def _idle(self) -> None:
        self.job = None
        self.progress.setMaximum(1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.search_button.setEnabled(bool(self.nodes))
        self.cancel_button.setEnabled(False)
        self._selection_changed()

    def done(self, result: int) -> None:  # Esc, Close and the window's close all end here (closeEvent does not)
        if result != QDialog.DialogCode.Accepted:
            self.closed = True
            if self.job is not None:
                self.job.cancel()
        super().done(result)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.closed = True
        if self.job is not None:
            self.job.cancel()
        super().closeEvent(event)


def _date(value: str) -> str:
    """YYYYMMDD as YYYY-MM-DD (other text as it came)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value

