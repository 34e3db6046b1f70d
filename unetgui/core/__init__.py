"""Qt-free, torch-free document model: volumes, labels, geometry, the Session (editing in every plane, undo,
review flags), brush tools, slice ranking, progress and errors (numpy and scipy only)."""
