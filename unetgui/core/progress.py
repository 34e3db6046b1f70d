"""Progress reporting and cooperative cancellation for long operations (no Qt).

Long work takes an optional ``progress(done, total, message)`` callback and an optional
:class:`CancelToken`; workers in the GUI turn the callback into signals and set the token from a
Cancel button.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Protocol, TypeVar

from unetgui.core.errors import Cancelled

T = TypeVar("T")
R = TypeVar("R")


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


def run_to_end(generator: Generator[T, None, R], each: Callable[[T], object] | None = None) -> R:
    """Run a task's generator to its end, passing each yielded event to ``each``; the generator's return value
    (a task's result)."""
    while True:
        try:
            event = next(generator)
        except StopIteration as stop:
            return stop.value
        if each is not None:
            each(event)
