"""Grids with -m, the summary table, and the Optuna Hyperband sweeper (pruning, resume,
several workers on one storage, the best-params experiment)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from src.errors import ConfigError
from src.sweeps.space import search_space
from tests.helpers import ROOT, TINY_DATA, cache_env, run_module

TINY = [*TINY_DATA, "logger=none"]
# lr 100 is a clearly bad setting: Hyperband stops such trials early
SEARCH = [
    "hparams_search=baseline_hyperband",
    "test=false",
    "hparams_search.pruner.max_resource=4",
    "hparams_search.pruner.reduction_factor=2",
    "~hparams_search.params.model.optimizer.lr",
    "+hparams_search.params.model.optimizer.lr={type:categorical,choices:[100.0,0.003]}",
    "~hparams_search.params.model.dropout",
]
# a finite space of 6 points: no two trials may share one
GRID = [
    *SEARCH[:4],
    "~hparams_search.params.model.optimizer.lr",
    "+hparams_search.params.model.optimizer.lr={type:categorical,choices:[100.0,0.003,0.01]}",
    "~hparams_search.params.model.dropout",
    "+hparams_search.params.model.dropout={type:categorical,choices:[0.3,0.5]}",
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


def test_grid_summary_lists_every_run_and_the_errors(tmp_path):
    sweep = tmp_path / "grid"
    result = run(
        tmp_path,
        "model.optimizer.lr=0.001,0.003",
        "data.preprocess=original,sepia",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode != 0  # Hydra reports that part of the sweep failed
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4
    assert sorted(summary["status"]) == ["completed", "completed", "failed", "failed"]
    failed = summary[summary["status"] == "failed"]
    assert failed["error"].str.contains("data.preprocess='sepia' is not one of").all()
    assert failed["overrides"].str.contains("data.preprocess=sepia").all()
    completed = summary[summary["status"] == "completed"]
    assert completed["test/f1_macro"].notna().all()
    assert list(summary["best val/f1_macro"].dropna()) == sorted(
        summary["best val/f1_macro"].dropna(), reverse=True
    )
    table = (sweep / "summary.md").read_text()
    assert table.count("\n| ") == 4 and "sepia" in table
    again = run_module(tmp_path, "src.report", str(sweep), timeout=120)
    assert again.returncode == 0 and "4 runs" in again.stdout


@pytest.fixture(scope="module")
def hyperband(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("hyperband")
    result = run(tmp, *SEARCH, "hparams_search.n_trials=8", f"hydra.sweep.dir={tmp / 'study'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "study"


def test_hyperband_prunes_and_pruned_trials_stop_early(hyperband):
    trials = study(hyperband).trials
    assert len(trials) == 8
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "no trial was pruned"
    summary = pd.read_csv(hyperband / "summary.csv")
    assert (summary["status"] == "pruned").sum() == len(pruned)
    max_epochs = summary.loc[summary["status"] == "completed", "epochs"].max()
    assert (summary.loc[summary["status"] == "pruned", "epochs"] < max_epochs).all()
    for trial in pruned:  # each pruned trial reported fewer epochs than the maximum
        assert max(trial.intermediate_values) < 4


def test_best_params_and_experiment_retrain_the_winner(hyperband, tmp_path):
    best = yaml.safe_load((hyperband / "best_params.yaml").read_text())
    assert best["trial"] == study(hyperband).best_trial.number
    assert set(best["params"]) == {"model.optimizer.lr"}
    result = run_module(
        tmp_path,
        "src.train",
        "--config-dir",
        str(hyperband),
        "experiment=baseline_hyperband_best",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        f"hydra.run.dir={tmp_path / 'best'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    config = yaml.safe_load((tmp_path / "best" / ".hydra" / "config.yaml").read_text())
    assert config["model"]["optimizer"]["lr"] == best["params"]["model.optimizer.lr"]
    assert (tmp_path / "best" / "test_metrics.json").is_file()


def test_rerun_resumes_the_study_without_repeating_a_point(tmp_path):
    sweep = tmp_path / "study"
    for n in (2, 4):
        result = run(tmp_path, *GRID, f"hparams_search.n_trials={n}", f"hydra.sweep.dir={sweep}")
        assert result.returncode == 0, result.stderr[-3000:]
        trials = study(sweep).trials
        assert [t.number for t in trials] == list(range(n))
        assert len(set(points(trials))) == n, points(trials)
    assert sorted(p.name for p in sweep.glob("trial_*")) == [f"trial_{i}" for i in range(4)]


def test_two_workers_share_one_study_without_repeats(tmp_path):
    sweep = tmp_path / "study"
    finish(
        start_workers(tmp_path, 2, *GRID, "hparams_search.n_trials=5", f"hydra.sweep.dir={sweep}")
    )
    trials = study(sweep).trials
    assert [t.number for t in trials] == list(range(5))
    assert all(t.state.is_finished() for t in trials)
    assert len(set(points(trials))) == 5, points(trials)


def test_study_killed_mid_trial_retries_it_and_ends_with_n_trials(tmp_path):
    sweep = tmp_path / "study"
    args = [*GRID, "hparams_search.n_trials=3", f"hydra.sweep.dir={sweep}"]
    (worker,) = start_workers(tmp_path, 1, *args)
    deadline = time.time() + 600
    while not (sweep / "trial_1").is_dir() and time.time() < deadline and worker.poll() is None:
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)  # mid-trial 1: it stays RUNNING in the storage
    worker.communicate()
    assert [t.state.name for t in study(sweep).trials] == ["COMPLETE", "RUNNING"]
    result = run(tmp_path, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(sweep).trials
    assert not [t for t in trials if not t.state.is_finished()]
    killed, retry = trials[1], trials[2]
    assert killed.state.name == "FAIL" and retry.params == killed.params
    assert retry.system_attrs["failed_trial"] == 1
    summary = pd.read_csv(sweep / "summary.csv").set_index("run")
    assert "worker died" in summary.loc["trial_1", "error"]
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and len(set(points(finished))) == 3


def test_three_workers_on_postgres_run_exactly_n_trials(tmp_path, postgres_url):
    storage = f"hparams_search.storage='{postgres_url}'"
    args = [*GRID, "hparams_search.n_trials=6", storage, f"hydra.sweep.dir={tmp_path / 'study'}"]
    finish(start_workers(tmp_path, 3, *args))
    trials = study(tmp_path, postgres_url).trials
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len(set(points(trials))) == 6  # the whole grid, each point once
    assert len({t.system_attrs["worker"] for t in trials}) >= 2  # really shared


def test_search_space_syntax():
    space = search_space(
        {
            "model": {
                "optimizer": {"lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}},
                "freeze": {"type": "categorical", "choices": ["all"]},
                "head": None,
            },
            "model.unfreeze_last": {"type": "int", "low": 0, "high": 40, "step": 2},
        }
    )
    assert set(space) == {"model.optimizer.lr", "model.freeze", "model.unfreeze_last"}
    assert space["model.optimizer.lr"].log and space["model.unfreeze_last"].step == 2
    with pytest.raises(ConfigError, match="type must be"):
        search_space({"x": {"type": "uniform"}})
    with pytest.raises(ConfigError, match="empty"):
        search_space({})


def fake_run(sweep: Path, name: str, override: str, files: dict[str, str]) -> Path:
    """A run folder as a sweep leaves it, with the given files (possibly empty or broken)."""
    run_dir = sweep / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(f"- {override}\n")
    for file_name, content in files.items():
        (run_dir / file_name).write_text(content)
    return run_dir


def test_summary_survives_empty_and_broken_json_files(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from src.sweeps.summary import RunStatusCallback

    sweep = tmp_path / "sweep"
    fake_run(
        sweep,
        "0",
        "model.optimizer.lr=0.001",
        {
            "run_status.json": '{"status": "completed", "score": 0.5}',
            "test_metrics.json": '{"test/f1_macro": 0.4}',
        },
    )
    # killed while writing (before files were written whole): an empty status, broken metrics
    fake_run(
        sweep,
        "1",
        "model.optimizer.lr=0.003",
        {"run_status.json": "", "test_metrics.json": '{"test/f1'},
    )
    result = run_module(tmp_path, "src.report", str(sweep), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 runs" in result.stdout and "model.optimizer.lr=0.003" in result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.count("Ignoring") == 2 and "run_status.json" in result.stderr
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary["status"].str.startswith("unknown").sum() == 1

    # a job whose fit summary is broken still records its status
    run_dir = fake_run(sweep, "2", "model.optimizer.lr=0.01", {"fit_summary.json": "{"})
    config = OmegaConf.create(
        {"hydra": {"runtime": {"output_dir": str(run_dir)}, "mode": "RUN"}, "monitor": "val/acc"}
    )
    done = JobReturn(status=JobStatus.COMPLETED, _return_value=0.25)
    RunStatusCallback().on_job_end(config, done)
    status = yaml.safe_load((run_dir / "run_status.json").read_text())
    assert status["status"] == "completed" and status["score"] == 0.25
