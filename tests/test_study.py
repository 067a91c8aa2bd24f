"""One Optuna study shared by runs and workers (StudyRunner): a rerun resumes it, several
workers share it without repeating a point, a killed trial is retried, on SQLite and
PostgreSQL."""

import os
import signal
import time

import pandas as pd
import pytest

from src.errors import ConfigError
from src.sweeps.study import build_pruner
from tests.studies import GRID, finish, points, run, start_workers, study


def test_rerun_resumes_the_study_without_repeating_a_point(tmp_path):
    sweep = tmp_path / "study"
    for n in (2, 4):
        result = run(tmp_path, *GRID, f"hparams_search.n_trials={n}", f"hydra.sweep.dir={sweep}")
        assert result.returncode == 0, result.stderr[-3000:]
        trials = study(sweep).trials
        assert [t.number for t in trials] == list(range(n))
        assert len(set(points(trials))) == n, points(trials)
    assert sorted(p.name for p in sweep.glob("trial_*")) == [f"trial_{i}" for i in range(4)]


def test_an_exhausted_space_ends_the_study_instead_of_training_a_point_again(tmp_path):
    sweep = tmp_path / "study"
    result = run(tmp_path, *GRID, "hparams_search.n_trials=8", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(sweep).trials
    assert len(trials) == 6 and len(set(points(trials))) == 6  # the grid's 6 points, once
    assert "All 6 points of the search space have a trial" in result.stdout + result.stderr
    assert "Trial-epochs spent: 6 of 8" in (sweep / "summary.md").read_text()


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


def test_a_typo_in_the_pruner_settings_is_one_sentence():
    with pytest.raises(ConfigError, match="no setting stop_hopless; its settings are name"):
        build_pruner({"stop_hopless": True})
    with pytest.raises(ConfigError, match="stop_hopeless must be true or false"):
        build_pruner({"stop_hopeless": "maybe"})
