"""The CSV log of a resumed run keeps the rows logged before the interruption; MLflow, W&B
and TensorBoard's HParams record each run of a sweep with its final metrics."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from src.runs.loggers import HistoryCSVLogger, kept_rows
from tests.helpers import ROOT, TINY_TRAIN, cache_env, compose_config


def log(logger: HistoryCSVLogger, rows: list[dict]) -> None:
    for row in rows:
        logger.log_metrics({k: v for k, v in row.items() if k != "step"}, step=row["step"])
    logger.save()


def test_resumed_run_keeps_rows_before_its_restart_point(tmp_path: Path):
    first = HistoryCSVLogger(tmp_path, name="csv", version="")
    log(first, [{"step": 0, "lr": 1.0}, {"step": 9, "epoch": 0, "loss": 2.0}])
    log(first, [{"step": 19, "epoch": 1, "loss": 1.5}])  # epoch 1 was cut short
    resumed = HistoryCSVLogger(tmp_path, name="csv", version="")
    log(resumed, [{"step": 10, "epoch": 1, "loss": 1.4}, {"step": 19, "epoch": 1, "loss": 1.3}])
    table = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert table["step"].tolist() == [0, 9, 10, 19]
    assert table["loss"].dropna().tolist() == [2.0, 1.4, 1.3]


def test_a_new_run_in_an_old_folder_starts_a_new_log(tmp_path: Path):
    log(HistoryCSVLogger(tmp_path, name="csv", version=""), [{"step": 5, "epoch": 0, "a": 1.0}])
    log(HistoryCSVLogger(tmp_path, name="csv", version=""), [{"step": 0, "epoch": 0, "a": 2.0}])
    assert pd.read_csv(tmp_path / "csv" / "metrics.csv")["a"].tolist() == [2.0]


def test_rows_without_epoch_are_ordered_by_step():
    earlier = [{"step": "0", "epoch": "", "lr": "1"}, {"step": "40", "epoch": "", "lr": "0.9"}]
    assert kept_rows(earlier, {"step": 36, "epoch": 1}) == earlier[:1]


def tracker_env(tmp_path: Path) -> dict[str, str]:
    """No tracking server, no W&B key: what a new user's machine has."""
    env = {**cache_env(tmp_path), "PROJECT_ROOT": str(tmp_path)}
    for name in ("MLFLOW_TRACKING_URI", "WANDB_API_KEY", "WANDB_MODE"):
        env.pop(name, None)
    return env


def hparams_of(run: Path) -> tuple[dict, list[str]]:
    """TensorBoard's HParams data of a run folder: its hyper-parameters and metric tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    params, metrics = {}, []
    for events in (run / "tensorboard").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        try:
            content = accumulator.PluginTagToContent("hparams")
        except KeyError:  # an event file without HParams data
            continue
        for blob in content.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(blob)
            if data.HasField("session_start_info"):
                for key, value in data.session_start_info.hparams.items():
                    params[key] = value.string_value or value.number_value
            if data.HasField("experiment"):
                metrics += [info.name.tag for info in data.experiment.metric_infos]
    return params, metrics


def test_a_grid_is_compared_side_by_side_in_mlflow_tensorboard_and_wandb(tmp_path):
    """Offline, with the real libraries: each run of a 2-point grid in MLflow (local SQLite
    under outputs/), W&B (offline files) and TensorBoard's HParams, with its final metrics."""
    import mlflow

    sweep = tmp_path / "multi"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.train",
            "-m",
            *TINY_TRAIN,
            "logger=[default,mlflow,wandb]",
            "model.optimizer.lr=0.001,0.002",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        env=tracker_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    (experiment,) = client.search_experiments(filter_string="name = 'rare-species-train'")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["model.optimizer.lr"] for r in runs) == ["0.001", "0.002"]
    for number, lr in ((0, 0.001), (1, 0.002)):
        folder = sweep / str(number)
        tested = json.loads((folder / "test_metrics.json").read_text())
        (run,) = [r for r in runs if float(r.data.params["model.optimizer.lr"]) == lr]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["test/acc"] == pytest.approx(tested["test/acc"])
        assert run.data.metrics["test/ece"] == pytest.approx(tested["test/ece"])
        assert "best/val/f1_macro" in run.data.metrics
        assert run.data.tags["run_dir"] == str(folder) and run.info.run_name.endswith(f"/{number}")
        params, metrics = hparams_of(folder)
        assert params["model.optimizer.lr"] == pytest.approx(lr) and params["seed"] == 42
        assert {"test/acc", "test/f1_macro", "best/val/f1_macro"} <= set(metrics)
        assert list((folder / "wandb").glob("offline-run-*/run-*.wandb"))


def test_a_tracker_that_is_not_installed_is_one_sentence(monkeypatch):
    import pytorch_lightning.loggers.mlflow as lightning_mlflow

    from src.errors import UserFacingError
    from src.train import instantiate_all

    monkeypatch.setattr(lightning_mlflow, "_MLFLOW_AVAILABLE", False)
    cfg = compose_config("train", "logger=[default,mlflow]", "paths.output_dir=/tmp/x")
    with pytest.raises(UserFacingError, match=r"pip install -e '\.\[trackers\]'"):
        instantiate_all(cfg.logger)
