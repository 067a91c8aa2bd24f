"""Experiment grids and Optuna studies: run status, summaries, search spaces, pruning."""
