"""Project callbacks: files a run leaves behind for people and for other tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

TEST_METRICS_FILE = "test_metrics.json"


def write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


class TestMetricsWriter(pl.Callback):
    """Writes every ``test/*`` metric as flat JSON (``test/acc``, ``test/f1_macro``, ...)."""

    def __init__(self, output_dir: str, filename: str = TEST_METRICS_FILE) -> None:
        self.path = Path(output_dir) / filename

    @rank_zero_only
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("test/")
        }
        write_json(self.path, metrics)
