"""QtCore-only job runners: engine/formats work on QThreads, results and progress as signals."""
