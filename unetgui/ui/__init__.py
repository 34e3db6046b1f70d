"""PySide6 + pyqtgraph widgets (the only layer besides app.py that imports Qt widgets)."""
