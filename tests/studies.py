"""Sweeps with ``python -m src.train -m`` on the tiny data, for the sweep and study tests: the
Hyperband search, a finite grid of it, and workers that share one study."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna

from tests.helpers import ROOT, TINY_DATA, cache_env, run_module

TINY = [*TINY_DATA, "logger=none"]
# lr 100 is a hopeless setting: such trials are stopped after their first epoch; the
# preset's dropout (0.3 to 0.7, step 0.1) makes 10 points, more than the tests' 8 trials
SEARCH = [
    "hparams_search=baseline_hyperband",
    "test=false",
    "hparams_search.pruner.max_resource=4",
    "hparams_search.pruner.reduction_factor=2",
    "~hparams_search.params.model.optimizer.lr",
    "+hparams_search.params.model.optimizer.lr={type:categorical,choices:[100.0,0.003]}",
]
# a finite space of 6 points: no two trials may share one (one epoch each, none judged
# hopeless, so the workers' tests see completed trials)
GRID = [
    *SEARCH[:4],
    "hparams_search.pruner.stop_hopeless=false",
    "~hparams_search.params.model.optimizer.lr",
    "+hparams_search.params.model.optimizer.lr={type:categorical,choices:[100.0,0.003,0.01]}",
    "~hparams_search.params.model.net.dropout",
    "+hparams_search.params.model.net.dropout={type:categorical,choices:[0.3,0.5]}",
    "hparams_search.pruner.max_resource=1",
]


def run(tmp_path: Path, *args: str):
    return run_module(tmp_path, "src.train", "-m", *TINY, *args, timeout=900)


def study(sweep: Path, storage: str | None = None) -> optuna.Study:
    storage = storage or f"sqlite:///{sweep}/study.db"
    return optuna.load_study(study_name="baseline_hyperband", storage=storage)


def points(trials) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in trials]


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "src.train", "-m", *TINY, *args]


def start_workers(tmp_path: Path, count: int, *args: str) -> list[subprocess.Popen]:
    # write the synthetic data once, so the workers do not race for it
    first = run(tmp_path, *args, "hparams_search.n_trials=0")
    assert first.returncode == 0, first.stderr[-3000:]
    return [
        subprocess.Popen(
            worker_command(*args),
            cwd=ROOT,
            env=cache_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def finish(workers: list[subprocess.Popen]) -> None:
    errors = [w.communicate(timeout=900)[1] for w in workers]
    assert all(w.returncode == 0 for w in workers), [e[-2000:] for e in errors]
