"""The last resort for errors nobody expected: one clear line for the user, the traceback in a log file.

The CLI's ``main``, the app's ``sys.excepthook`` and its background jobs call :func:`report`. It never
raises: a failure to write the log (a full disk) still gives the user the line, without the log's path.

Log folder: ``logs`` in the data root (core/paths.py), where the app keeps its projects too. The newest
``KEEP`` logs are kept.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import traceback

from unetgui.core.paths import data_root

KEEP = 20
_PREFIX = "crash-"


def log_folder() -> str:
    return os.path.join(data_root(), "logs")


def summary(exc: BaseException) -> str:
    """One line for the user: what happened and what to do, without a traceback."""
    if isinstance(exc, MemoryError):
        return "out of memory: close other programs, or use a smaller image, model or batch"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"{exc.strerror or str(exc) or type(exc).__name__}{where}"
    text = " ".join(str(exc).split())[:300]
    return f"an unexpected error (a bug in unetgui): {type(exc).__name__}{': ' + text if text else ''}"


def write_log(exc: BaseException, context: str = "") -> str | None:
    """Write the traceback (with versions and ``context``) to a new log file; its path, or None if that failed."""
    try:
        from unetgui import __version__

        folder = log_folder()
        os.makedirs(folder, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = os.path.join(folder, f"{_PREFIX}{stamp}.log")
        lines = [f"unetgui {__version__}, Python {platform.python_version()}, {platform.platform()}",
                 f"time: {stamp}", f"context: {context or '-'}", f"command line: {sys.argv}", "",
                 *traceback.format_exception(type(exc), exc, exc.__traceback__)]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(line.rstrip("\n") for line in lines) + "\n")
    except Exception:  # noqa: BLE001 - the last resort must not fail in turn
        return None
    try:
        for old in sorted(n for n in os.listdir(folder) if n.startswith(_PREFIX))[:-KEEP]:
            os.remove(os.path.join(folder, old))
    except OSError:
        pass  # another process pruned them first
    return path


def report(exc: BaseException, context: str = "") -> str:
    """:func:`summary`, with the log file's path when the traceback could be written."""
    path = write_log(exc, context)
    return summary(exc) + (f" (details: {path})" if path else "")
