"""The one data root of unetgui: untitled projects, sample copies, retired annotations and crash logs live
under it. ``UNETGUI_DATA`` overrides it (tests, a portable install). Otherwise the platform's place for an
application's data, the folder Qt's AppDataLocation names for organisation and application "unetgui":
``~/.local/share/unetgui/unetgui`` (``$XDG_DATA_HOME``) on Linux, ``~/Library/Application
Support/unetgui/unetgui`` on macOS, ``%APPDATA%\\unetgui\\unetgui`` on Windows. No Qt here: the command
line's crash logs go to the same place as the app's.
"""

from __future__ import annotations

import os
import sys


def data_root() -> str:
    """The folder (not created here)."""
    if os.environ.get("UNETGUI_DATA"):
        return os.environ["UNETGUI_DATA"]
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Roaming")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "unetgui", "unetgui")
