"""A whole Hyperband study, end to end: wall time, trials completed and pruned, trial-epochs
spent against the most the study could spend, and the share of the time spent outside the
trials' training and validation epochs (start-up, data setup, checkpointing, testing)."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from src.benchmarks.digits import ensure_digits
from src.benchmarks.measure import train_run
from src.runs.files import write_text
from src.sweeps.summary import SUMMARY_CSV, SUMMARY_MD, epoch_budget

# the measurement: real scans, a hopeless learning rate beside a good one, 4 points
DIGITS_SEARCH = [
    "hparams_search=baseline_hyperband",
    "hparams_search.n_trials=8",
    "hparams_search.pruner.max_resource=6",
    "~hparams_search.params.model.optimizer.lr",
    "+hparams_search.params.model.optimizer.lr={type:categorical,choices:[50.0,0.003]}",
    "~hparams_search.params.model.net.dropout",
    "+hparams_search.params.model.net.dropout={type:categorical,choices:[0.3,0.5]}",
]


def study_overrides(args: argparse.Namespace) -> list[str]:
    """The study to run: ``--overrides`` when given, else the digits study above."""
    if args.overrides:
        return list(args.overrides)
    root = args.root or ensure_digits()
    return [
        "data=rarespecies",
        f"data.root={root}",
        "data.image_size=32",
        "trainer.enable_progress_bar=false",
        "logger=none",
        *DIGITS_SEARCH,
    ]


def epoch_seconds(sweep: Path) -> float:
    """Seconds the trials spent in training and validation epochs (their timing.json)."""
    total = 0.0
    for timing in sweep.glob("trial_*/timing.json"):
        epochs = json.loads(timing.read_text()).get("epochs", [])
        total += sum(e.get("train_s", 0.0) + e.get("val_s", 0.0) for e in epochs)
    return total


def bench_study(args: argparse.Namespace) -> list[dict[str, Any]]:
    sweep = Path(tempfile.mkdtemp(prefix="bench_study_"))
    overrides = study_overrides(args)
    wall = train_run(overrides, sweep, multirun=True)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{sweep}/study.db")
    states = [t.state for t in study.trials]
    summary = pd.read_csv(sweep / SUMMARY_CSV)
    budget = epoch_budget(summary)  # its runs recorded the study's n_trials
    training = epoch_seconds(sweep)
    best = study.best_value if TrialState.COMPLETE in states else None
    # the per-trial table (epochs, why each stopped) beside the bench's numbers
    write_text(args.out / "study_summary.md", (sweep / SUMMARY_MD).read_text())
    shutil.rmtree(sweep, ignore_errors=True)
    return [
        {
            "bench": "study",
            "study": " ".join(o for o in overrides if o.startswith("+") or "n_trials" in o),
            "wall_s": round(wall, 1),
            "trials": len(states),
            "completed": states.count(TrialState.COMPLETE),
            "pruned": states.count(TrialState.PRUNED),
            "failed": states.count(TrialState.FAIL),
            "epochs_spent": budget["epochs_spent"],
            "epochs_max": budget["epochs_max"],
            "saved": budget["saved"],
            "best_val": None if best is None else round(best, 4),
            "in_epochs_s": round(training, 1),
            "outside_epochs_share": round(1 - training / wall, 3),
        }
    ]
