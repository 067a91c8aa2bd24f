"""What the loggers record beyond Lightning's own: a CSV logger that keeps a run's history
when the run is resumed, and each run's hyper-parameters beside its final metrics.

Lightning's CSVLogger deletes ``metrics.csv`` when it finds one, so a run resumed in its own
folder (``ckpt_path=last``) loses every row logged before the interruption. This one keeps
the earlier rows up to where the resumed run starts again (its first new row's epoch and
step; rows the interrupted run logged after that point are logged again) and rewrites the
whole file atomically at each save (and with every checkpoint), so a killed run never
leaves half a row and keeps what its last checkpoint had seen.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from src.runs.files import write_with


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def kept_rows(earlier: list[dict[str, Any]], first_new: dict[str, Any]) -> list[dict[str, Any]]:
    """The earlier rows logged before the point where the new rows start."""
    epoch, step = _number(first_new.get("epoch")), _number(first_new.get("step"))
    if step is None:
        return []

    def before(row: dict[str, Any]) -> bool:
        row_epoch, row_step = _number(row.get("epoch")), _number(row.get("step"))
        if row_step is None:
            return False
        if epoch is None or row_epoch is None:  # e.g. a learning-rate row: steps decide
            return row_step < step
        return row_epoch < epoch or (row_epoch == epoch and row_step < step)

    return [row for row in earlier if before(row)]


class HistoryWriter(ExperimentWriter):
    """Lightning's writer, but earlier rows are kept and the file is replaced whole."""

    def __init__(self, log_dir: str) -> None:
        self._earlier: list[dict[str, Any]] | None = None
        self._rows: list[dict[str, Any]] = []
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if path.is_file():
            with path.open(newline="") as handle:
                self._earlier = list(csv.DictReader(handle))

    def save(self) -> None:
        if not self.metrics:
            return
        if self._earlier is not None:  # the first save after a resume decides what stays
            self._rows = kept_rows(self._earlier, self.metrics[0])
            self._earlier = None
        self._rows.extend(self.metrics)
        self.metrics = []
        keys = sorted({key for row in self._rows for key in row})
        self.metrics_keys = keys

        def write(path: Path) -> None:
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=keys)
                writer.writeheader()
                writer.writerows(self._rows)

        write_with(self.metrics_file_path, write)


class HistoryCSVLogger(CSVLogger):
    """``pytorch_lightning.loggers.CSVLogger`` that keeps history across a resume."""

    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(log_dir=self.log_dir)
        return self._experiment

    def after_save_checkpoint(self, checkpoint_callback) -> None:
        """Flush with every checkpoint, so the file holds what the checkpoint has seen."""
        self.save()


def run_overrides(cfg: DictConfig) -> dict[str, Any]:
    """What this run sets on the command line (what a grid or study varies), plus its seed:
    the hyper-parameters that tell a sweep's runs apart. Hydra's own keys are left out."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # composed without @hydra.main (tests, notebooks)
        overrides = []
    params: dict[str, Any] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if key and not key.startswith("hydra.") and not key.startswith("hydra/"):
            params[key] = _number(value) if _number(value) is not None else value
    params["seed"] = cfg.get("seed")
    return params


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics the loggers can take: numbers, neither NaN nor infinite."""
    numbers = {key: _number(value) for key, value in metrics.items()}
    return {
        key: value for key, value in numbers.items() if value is not None and math.isfinite(value)
    }


def log_metrics(loggers: list[Logger], metrics: dict[str, Any], step: int) -> None:
    """``metrics`` (its finite numbers) to every logger at ``step``."""
    finite = finite_metrics(metrics)
    for logger in loggers:
        logger.log_metrics(finite, step=step)


@rank_zero_only
def log_run_summary(loggers: list[Logger], params: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The run's hyper-parameters beside its final metrics, once, at its end: TensorBoard's
    HParams tab and MLflow's run comparison then show a sweep's runs side by side."""
    finite = finite_metrics(metrics)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, finite)
        else:
            logger.log_hyperparams(params)
            logger.log_metrics(finite)


def finish_runs(loggers: list[Logger]) -> None:
    """End the W&B run a logger opened: Lightning leaves it open, and the next job of a sweep
    in the same process would otherwise log into it."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()  # a no-op when no run is open
