"""The Optuna Hyperband sweeper (hydra_plugins/rare_species_sweeper) with its pruning
callback (src/sweeps/pruning.py): bad trials stop early, and the best params retrain."""

from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from tests.helpers import run_module
from tests.studies import SEARCH, run, study


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
        assert max(trial.intermediate_values, default=0) < 4


def test_hopeless_trials_stop_at_the_first_rung(hyperband):
    summary = pd.read_csv(hyperband / "summary.csv")
    hopeless = summary[summary["overrides"].str.contains("lr=100.0")]
    assert len(hopeless) >= 2  # 8 trials over 10 points, half of them lr 100
    assert (hopeless["status"] == "pruned").all()
    assert (hopeless["epochs"] == 1).all()
    assert hopeless["stopped"].str.contains("diverged|no better than chance").all()
    good = summary[~summary["overrides"].str.contains("lr=100.0")]
    assert not good["stopped"].str.contains("diverged|no better than chance").any()


def test_the_epoch_accounting_adds_up(hyperband):
    summary = pd.read_csv(hyperband / "summary.csv")
    best = yaml.safe_load((hyperband / "best_params.yaml").read_text())
    budget = best["epochs"]
    assert budget["epochs_spent"] == summary["epochs"].sum()
    assert budget["epochs_max"] == 8 * 4 and budget["runs"] == 8
    assert budget["saved"] == pytest.approx(1 - budget["epochs_spent"] / 32, abs=1e-4)
    stops = {stop["trial"]: stop for stop in best["trials"]}
    assert sorted(stops) == list(range(8))
    assert sum(stop["epochs"] for stop in stops.values()) == budget["epochs_spent"]
    for row in summary.itertuples():
        stop = stops[int(row.run.removeprefix("trial_"))]
        assert (stop["status"], stop["epochs"], stop["stopped"]) == (
            row.status,
            row.epochs,
            row.stopped,
        )
    first_line = (hyperband / "summary.md").read_text().splitlines()[0]
    assert f"{budget['epochs_spent']} of 32" in first_line and "saved" in first_line


def test_best_params_and_experiment_retrain_the_winner(hyperband, tmp_path):
    best = yaml.safe_load((hyperband / "best_params.yaml").read_text())
    assert best["trial"] == study(hyperband).best_trial.number
    assert set(best["params"]) == {"model.optimizer.lr", "model.net.dropout"}
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
