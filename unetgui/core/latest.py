"""Handing the newest value from one thread to another: :meth:`Latest.put` replaces what is waiting,
:meth:`Latest.take` empties the slot. A value once taken is never put back, so an older value can never
overwrite a newer one (the reviewed slices handed to a training run, issue 12)."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Latest(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None

    def put(self, value: T) -> None:
        with self._lock:
            self._value = value

    def take(self) -> T | None:
        with self._lock:
            value, self._value = self._value, None
        return value

    def clear(self) -> None:
        self.take()
