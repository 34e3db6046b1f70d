"""Shared fixtures. Qt must be told to run offscreen before any QApplication exists."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LANG", "C.UTF-8")
if "UNETGUI_DATA" not in os.environ:  # untitled projects and sample copies of GUI tests stay out of the home folder
    import tempfile

    os.environ["UNETGUI_DATA"] = tempfile.mkdtemp(prefix="unetgui-tests-")
try:  # the app's settings (recent files, the device) of GUI tests stay out of the user's: a file in that folder
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, os.environ["UNETGUI_DATA"])
except ImportError:  # the GPU machine runs the engine's tests without Qt
    pass

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (CI has it at the same relative path); fail loudly when it is missing."""
    if not DATA.is_dir():
        pytest.fail(f"shared test data not found at {DATA}")
    return DATA


def phantom_hu(shape: tuple[int, int, int] = (12, 64, 80), seed: int = 0) -> np.ndarray:
    """A small CT-like phantom (z, y, x) in HU: air, a body ellipse (40 HU), a 'liver' blob (90 HU), noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]].astype(np.float32)
    cz, cy, cx = (np.asarray(shape, np.float32) - 1) / 2
    body = ((y - cy) / (0.42 * shape[1])) ** 2 + ((x - cx) / (0.45 * shape[2])) ** 2 < 1
    liver = ((z - cz) / (0.35 * shape[0])) ** 2 + ((y - cy * 0.9) / (0.2 * shape[1])) ** 2 + ((x - cx * 0.8) / (0.18 * shape[2])) ** 2 < 1
    hu = np.where(body, 40.0, -1000.0) + np.where(liver, 50.0, 0.0) + rng.normal(0, 8, shape)
    return hu.round().astype(np.int16)


@pytest.fixture
def phantom() -> np.ndarray:
    return phantom_hu()


@pytest.fixture(autouse=True)
def _label_name_answered(monkeypatch):
    """The first stroke on a fresh image asks for a label name (ui.label_prompt): GUI tests that paint answer
    "Liver" without a modal dialog, and their first drag paints (a real modal dialog takes the mouse release, so
    the window drops that drag: tests/ui/test_gui_label_prompt.py runs the window's own rule)."""
    try:
        from unetgui.ui import label_prompt
        from unetgui.ui.main_window import MainWindow
    except ImportError:  # the GPU machine runs the engine's tests without Qt
        return
    monkeypatch.setattr(label_prompt, "run_dialog", lambda dialog: (dialog.choose("Liver"), True)[1])
    monkeypatch.setattr(MainWindow, "_name_first_label", lambda self, drag: label_prompt.ask_label_name(self, self.session))


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The app's main window, shown offscreen, with its settings in a fresh folder (the GUI tests' fixture)."""
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    from unetgui.app import create_app
    from unetgui.ui.main_window import MainWindow

    create_app([])
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()
    assert not w.runner.busy
