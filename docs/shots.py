"""What the screenshot scripts (docs/screenshots*.py, run under Xvfb) share: grabbing the screen and waiting in
Qt's event loop without blocking it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from PySide6.QtCore import QTimer


def grab(window, path: Path) -> None:
    """The whole X screen (menus and dialogs included) with ImageMagick's ``import`` under a display, else the
    window's own pixels."""
    if shutil.which("import") and os.environ.get("DISPLAY"):
        subprocess.run(["import", "-window", "root", str(path)], check=True)
    else:
        window.grab().save(str(path))


def later(ms: int, step) -> None:
    QTimer.singleShot(ms, step)


def wait_for(condition, then, every: int = 300) -> None:
    """Call ``then`` once ``condition()`` holds, asking every ``every`` ms (the event loop keeps running)."""
    if condition():
        then()
    else:
        later(every, lambda: wait_for(condition, then, every))
