"""Projects: several series with their labels, reviewed flags, label table, models and app state in one
folder, with a crash-safe autosave journal. No Qt (the GUI and the CLI both use it)."""
