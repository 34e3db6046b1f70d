"""Projects: several series with their labels, reviewed flags (per plane), label table, models and app state in
one folder, with a crash-safe autosave journal; the app's workspace (the open project and shown series, what
training takes from it) and the sample study. No Qt (the GUI and the CLI both use it)."""
