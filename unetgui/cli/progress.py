"""Progress of long commands on stderr: a one-line bar with ETA on a terminal; elsewhere (a log file, a
cluster job's output) a plain line every 5 % or 30 seconds, whichever comes first, so that progress is
visible there too."""

from __future__ import annotations

import sys
import time

LOG_PERCENT = 5.0
LOG_SECONDS = 30.0


class ProgressLine:
    def __init__(self, label: str, stream=None) -> None:
        self._stream = stream or sys.stderr
        self._label, self._start, self._tty = label, time.monotonic(), self._stream.isatty()
        self._last, self._last_share = 0.0, -1.0

    def __call__(self, done: int, total: int, message: str = "", eta: float | None = None) -> None:
        now = time.monotonic()
        if total <= 0:
            return
        elapsed = now - self._start
        if eta is None:
            eta = elapsed / done * (total - done) if done else 0.0
        share = 100.0 * min(done, total) / total
        if not self._tty:
            if done < total and share - self._last_share < LOG_PERCENT and now - self._last < LOG_SECONDS:
                return
            if done >= total and self._last_share >= 100.0:
                return
            self._last, self._last_share = now, share
            self._stream.write(f"{self._label}: {done}/{total} ({share:.0f} %), {elapsed:.0f} s, ETA {eta:.0f} s"
                               f"{' ' + message[:60] if message else ''}\n")
            self._stream.flush()
            return
        if now - self._last < 0.2 and done < total:
            return
        self._last = now
        bar = "#" * int(30 * min(done, total) / total)
        self._stream.write(f"\r{self._label} [{bar:<30}] {done}/{total} ETA {eta:5.0f} s {message[:40]:<40}")
        if done >= total:
            self._stream.write("\n")
        self._stream.flush()
