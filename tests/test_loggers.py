"""The CSV log of a resumed run keeps the rows logged before the interruption."""

from pathlib import Path

import pandas as pd

from src.runs.loggers import HistoryCSVLogger, kept_rows


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
