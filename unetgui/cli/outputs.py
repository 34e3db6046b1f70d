"""Output files of the commands: checked before the work (a typo in ``--json`` must not cost a training
run) and written atomically."""

from __future__ import annotations

import os

from unetgui.core import atomic
from unetgui.core.errors import UnetguiError


def check_writable(path: str, flag: str) -> None:
    """Raise a one-line :class:`UnetguiError` unless a file can be written at ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UnetguiError(f"{flag} {path}: is a folder; give a file name")
    if not os.path.isdir(folder):
        raise UnetguiError(f"{flag} {path}: its folder does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UnetguiError(f"{flag} {path}: not writable")


def write_json(path: str, data: dict) -> None:
    try:
        atomic.write_json(path, data)
    except OSError as exc:
        raise UnetguiError(f"cannot write {path}: {exc.strerror or exc}") from exc
