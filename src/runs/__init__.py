"""A run of the project: its folder, files written whole, checkpoints, logs, the
callbacks that keep it resumable, and the command-line runner."""
