"""A CSV logger that keeps a run's history when the run is resumed.

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

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

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
