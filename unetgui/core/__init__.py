"""Qt-free, torch-free document model: volumes, labels, geometry, progress and errors (numpy only)."""
