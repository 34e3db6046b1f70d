"""A one-line progress bar with ETA on stderr (drawn only when stderr is a terminal)."""

from __future__ import annotations

import sys
import time


class ProgressLine:
    def __init__(self, label: str) -> None:
        self._label, self._start, self._tty = label, time.monotonic(), sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, done: int, total: int, message: str = "", eta: float | None = None) -> None:
        now = time.monotonic()
        if not self._tty or total <= 0 or (now - self._last < 0.2 and done < total):
            return
        self._last = now
        elapsed = now - self._start
        if eta is None:
            eta = elapsed / done * (total - done) if done else 0.0
        bar = "#" * int(30 * min(done, total) / total)
        sys.stderr.write(f"\r{self._label} [{bar:<30}] {done}/{total} ETA {eta:5.0f} s {message[:40]:<40}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
