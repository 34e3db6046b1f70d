"""Progress reporting and cooperative cancellation for long operations (no Qt).

Long work takes an optional ``progress(done, total, message)`` callback and an optional
:class:`CancelToken`; workers in the GUI turn the callback into signals and set the token from a
Cancel button.
"""

from __future__ import annotations

import threading
from typing import Protocol

from unetgui.core.errors import Cancelled


class ProgressFn(Protocol):
    def __call__(self, done: int, total: int, message: str) -> None: ...


class CancelToken:
    """A thread-safe flag; long operations call :meth:`raise_if_set` between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def raise_if_set(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def report(progress: ProgressFn | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if one was given."""
    if progress is not None:
        progress(done, total, message)


def check(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set."""
    if cancel is not None:
        cancel.raise_if_set()
