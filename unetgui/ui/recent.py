"""Recently opened paths, kept in the app's settings: the one implementation behind File > Open recent
(images and folders) and the welcome panel's recent projects."""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QSettings

MAX_RECENT = 8


class RecentList:
    """The newest ``limit`` paths under settings key ``key``, newest first; ``keep`` filters what is listed
    (e.g. only folders that still exist)."""

    def __init__(self, key: str, keep: Callable[[str], bool] = lambda path: True, limit: int = MAX_RECENT) -> None:
        self.key, self.keep, self.limit = key, keep, limit

    def items(self) -> list[str]:
        value = QSettings().value(self.key, [])
        return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str) and v and self.keep(v)]

    def add(self, path: str) -> None:
        path = os.path.abspath(path)
        QSettings().setValue(self.key, ([path] + [p for p in self.items() if p != path])[:self.limit])
