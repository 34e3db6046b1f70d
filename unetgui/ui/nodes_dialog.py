"""File > Archive nodes: the PACS and research archives unetgui talks to (unetgui/net/nodes.py keeps them in the data
root, shared with ``unetgui archive --node``), each DIMSE (AE title, host, port) or DICOMweb (URL), with a *Test
connection* that runs C-ECHO or a QIDO request on a worker."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDoubleSpinBox, QFormLayout, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QListWidget, QPushButton,
    QSpinBox, QStackedWidget, QVBoxLayout, QWidget,
)

from unetgui.core.errors import UnetguiError
from unetgui.net.nodes import DEFAULT_AET, Node, load_nodes, save_nodes
from unetgui.tasks.archive import echo
from unetgui.workers.jobs import Job, JobRunner

DIMSE, DICOMWEB = 0, 1
_PASSWORDS: dict[tuple[str, str, str], str] = {}  # per (node, URL, user), this run of the app only: never written


def password_for(parent: QWidget | None, node: Node) -> str | None:
    """The password of a DICOMweb node with a user name, asked once per run of the app ("" when none is needed,
    None when the user cancelled)."""
    if not node.username:
        return ""
    key = (node.name, node.url, node.username)  # an edited URL or user is asked again: never sent elsewhere
    if key not in _PASSWORDS:
        text, ok = QInputDialog.getText(parent, "Archive password", f"Password of {node.username} on {node.describe()}:",
                                        QLineEdit.EchoMode.Password)
        if not ok:
            return None
        _PASSWORDS[key] = text
    return _PASSWORDS[key]


def forget_password(node: Node) -> None:
    """After the archive refused the user: the next attempt asks again."""
    _PASSWORDS.pop((node.name, node.url, node.username), None)


class NodesDialog(QDialog):
    """Edit the saved nodes; ``saved`` after the list was written."""

    saved = Signal()

    def __init__(self, parent: QWidget | None, runner: JobRunner) -> None:
        super().__init__(parent)
        self.setWindowTitle("Archive nodes")
        self.runner = runner
        self.job: Job | None = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        try:
            self.nodes = load_nodes()
        except UnetguiError as exc:
            self.nodes = []
            self.status.setText(f"{exc}. Saving replaces the file.")
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._show)
        add, remove = QPushButton("Add"), QPushButton("Remove")
        add.clicked.connect(self._add)
        remove.clicked.connect(self._remove)
        self.name = QLineEdit()
        self.kind = QComboBox()
        self.kind.addItems(["DICOM (C-FIND, C-GET / C-MOVE, C-STORE)", "DICOMweb (QIDO-RS, WADO-RS, STOW-RS)"])
        self.host, self.called = QLineEdit(), QLineEdit()
        self.called.setPlaceholderText("the archive's AE title, e.g. ORTHANC")
        self.port = QSpinBox(minimum=1, maximum=65535, value=104)
        self.move_port = QSpinBox(minimum=0, maximum=65535, value=0)
        self.move_port.setSpecialValueText("none (retrieve with C-GET)")
        self.move_port.setToolTip("C-MOVE sends the images to this port on this computer: the archive must know our "
                                  "AE title with this host and port (docs/archive.md)")
        self.tls = QCheckBox("TLS")
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://host:8042/dicom-web")
        self.username = QLineEdit()
        self.username.setPlaceholderText("optional: HTTP basic authentication (the password is asked, never stored)")
        self.calling = QLineEdit(DEFAULT_AET)
        self.timeout = QDoubleSpinBox(minimum=1, maximum=600, value=30, suffix=" s")
        dimse, web = QWidget(), QWidget()
        form = QFormLayout(dimse)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("AE title", self.called)
        form.addRow("C-MOVE port", self.move_port)
        form.addRow("", self.tls)
        form = QFormLayout(web)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("URL", self.url)
        form.addRow("User", self.username)
        self.pages = QStackedWidget()
        self.pages.addWidget(dimse)
        self.pages.addWidget(web)
        self.kind.currentIndexChanged.connect(self.pages.setCurrentIndex)
        fields = QFormLayout()
        fields.addRow("Name", self.name)
        fields.addRow("Reached by", self.kind)
        fields.addRow(self.pages)
        fields.addRow("Our AE title", self.calling)
        fields.addRow("Time-out", self.timeout)
        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.test)
        apply_button, save, close = QPushButton("Apply"), QPushButton("Save"), QPushButton("Close")
        apply_button.setToolTip("Keep this node's fields in the list (Save writes the list)")
        apply_button.clicked.connect(self.apply)
        save.clicked.connect(self.save)
        close.clicked.connect(self.close)
        left = QVBoxLayout()
        left.addWidget(self.list)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        left.addLayout(row)
        right = QVBoxLayout()
        right.addLayout(fields)
        right.addWidget(self.status)
        right.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        for b in (apply_button, save, close):
            buttons.addWidget(b)
        right.addLayout(buttons)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addLayout(right, 2)
        self._fill()
        self.resize(760, 380)

    def _fill(self) -> None:
        self.list.clear()
        self.list.addItems([n.name for n in self.nodes])
        if self.nodes:
            self.list.setCurrentRow(0)

    def _show(self, row: int) -> None:
        if not 0 <= row < len(self.nodes):
            return
        n = self.nodes[row]
        self.name.setText(n.name)
        self.kind.setCurrentIndex(DICOMWEB if n.dicomweb else DIMSE)
        self.host.setText(n.host)
        self.port.setValue(n.port or 104)
        self.called.setText(n.called_aet)
        self.move_port.setValue(n.move_port)
        self.tls.setChecked(n.tls)
        self.url.setText(n.url)
        self.username.setText(n.username)
        self.calling.setText(n.calling_aet)
        self.timeout.setValue(n.timeout_s)

    def node(self) -> Node:
        """The node the fields describe (ArchiveError when they do not make one)."""
        web = self.kind.currentIndex() == DICOMWEB
        return Node(self.name.text().strip(), host="" if web else self.host.text().strip(),
                    port=0 if web else self.port.value(), called_aet="" if web else self.called.text().strip(),
                    url=self.url.text().strip() if web else "", calling_aet=self.calling.text().strip() or DEFAULT_AET,
                    move_port=0 if web else self.move_port.value(), tls=self.tls.isChecked() and not web,
                    username=self.username.text().strip() if web else "", timeout_s=self.timeout.value())

    def _add(self) -> None:
        names = {n.name for n in self.nodes}
        name = next(f"Archive {k}" for k in range(1, 1000) if f"Archive {k}" not in names)
        self.nodes.append(Node(name, host="localhost", port=4242, called_aet="ORTHANC"))
        self._fill()
        self.list.setCurrentRow(len(self.nodes) - 1)

    def _remove(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.nodes):
            del self.nodes[row]
            self._fill()

    def apply(self) -> bool:
        row = self.list.currentRow()
        try:
            node = self.node()
        except UnetguiError as exc:
            self.status.setText(str(exc))
            return False
        if any(n.name == node.name for k, n in enumerate(self.nodes) if k != row):
            self.status.setText(f"another node is called {node.name!r}: choose another name")
            return False
        if 0 <= row < len(self.nodes):
            self.nodes[row] = node
        else:
            self.nodes.append(node)
        self._fill()
        self.list.setCurrentRow(row if row >= 0 else len(self.nodes) - 1)
        return True

    def save(self) -> None:
        if self.nodes and not self.apply():
            return
        try:
            save_nodes(self.nodes)
        except (UnetguiError, OSError) as exc:
            self.status.setText(f"not saved: {exc}")
            return
        self.status.setText(f"Saved {len(self.nodes)} node(s).")
        self.saved.emit()

    def test(self) -> None:
        """C-ECHO or a QIDO request to the node the fields describe, on a worker."""
        try:
            node = self.node()
        except UnetguiError as exc:
            self.status.setText(str(exc))
            return
        password = password_for(self, node)
        if password is None:
            return
        self.test_button.setEnabled(False)
        self.status.setText(f"Testing {node.describe()}...")
        self.job = self.runner.run("archive echo", echo, node, password,
                                   on_finished=lambda s: self.status.setText(f"{node.describe()} answers ({1000 * s:.0f} ms)."),
                                   on_failed=self.status.setText, on_done=self._tested)

    def _tested(self) -> None:
        self.job = None
        self.test_button.setEnabled(True)

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.job is not None:
            self.job.cancel()
        super().closeEvent(event)
