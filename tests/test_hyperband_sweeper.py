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
