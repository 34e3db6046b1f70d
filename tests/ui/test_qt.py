"""Qt smoke tests (offscreen): the PySide6 canary and the window the `unetgui` command opens."""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.gui


def test_signal_emit_does_not_leak_references_to_true(qtbot):
    """PySide6 6.12.0 drops a reference to True on every emit and aborts after ~570 (see TOOLCHAIN)."""
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        fired = Signal(bool)

    emitter = Emitter()
    received = []
    emitter.fired.connect(received.append)
    before = sys.getrefcount(True)
    for _ in range(100):
        emitter.fired.emit(True)
    assert len(received) == 100
    assert sys.getrefcount(True) >= before - 5  # a few may move around; 100 lost would be the bug


def test_main_window_opens_with_menus(qtbot):
    from unetgui.app import create_app
    from unetgui.ui.main_window import MainWindow

    create_app([])
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.windowTitle() == "unetgui"
    assert [a.text() for a in window.menuBar().actions()] == ["&File", "&Edit", "&View", "&Model", "&Help"]


def test_no_argument_entry_point_starts_the_gui_path(monkeypatch, tmp_path):
    import unetgui.app
    from unetgui.__main__ import main

    called = []
    monkeypatch.setattr(unetgui.app, "run", lambda argv: called.append(argv) or 0)
    assert main([]) == 0 and called == [[]]
    assert main([str(tmp_path)]) == 0 and called[-1] == [str(tmp_path)]  # an existing path opens the GUI too
    assert main(["no/such/folder"]) == 2 and len(called) == 2  # neither a command nor a path: no app


def test_subcommands_never_import_qt():
    import subprocess

    code = ("import sys; from unetgui.__main__ import main; "
            "from unetgui import cli; import unetgui.formats.dicom, unetgui.formats.nifti, unetgui.formats.png, "
            "unetgui.formats.dicom_seg; print('PySide6' in sys.modules, 'pyqtgraph' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False False", out.stderr


def test_application_icon_is_loaded_from_resources(qtbot):
    from unetgui.app import RESOURCES, create_app

    app = create_app([])
    assert (RESOURCES / "unetgui.svg").is_file()
    image = app.windowIcon().pixmap(32, 32).toImage()
    assert not image.isNull()
    assert image.pixelColor(16, 16).alpha() == 255  # the SVG was rendered, not an empty icon
