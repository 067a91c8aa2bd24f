"""Testing a fitted model on every named test set of its data module."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from src.data.schema import phylum_of
from src.evaluation.taxonomy import taxonomy_metrics
from src.evaluation.writers import TEST_METRICS_FILE, named_metrics, write_test_report
from src.runs.files import write_json


def run_tests(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule,
    output_dir: str | Path,
    ckpt_path: str | None = None,
) -> dict[str, float]:
    """Test on each of ``datamodule.test_sets``; write ``test_metrics.json`` and the reports.

    ``test_metrics.json`` holds ``test/*`` and, when val/test were filtered, ``test_full/*``
    (the unfiltered test set), each with the taxonomy metrics of
    :mod:`src.evaluation.taxonomy`; the per-class table and figures describe ``test``.
    """
    datamodule.setup("test")
    metrics: dict[str, float] = {}
    for name in datamodule.test_sets:
        trainer.test(model, dataloaders=datamodule.test_dataloader(name), ckpt_path=ckpt_path)
        metrics.update(named_metrics(name, trainer.callback_metrics))
        probabilities, labels = model.test_predictions()
        metrics.update(
            taxonomy_metrics(
                probabilities, labels, model.class_names, datamodule.index, datamodule.target, name
            )
        )
        if name == "test" and trainer.is_global_zero:
            write_test_report(
                output_dir,
                probabilities,
                labels,
                datamodule.datasets[name],
                model.class_names,
                phylum_of(datamodule.index, datamodule.target),
                trainer.loggers,
                trainer.global_step,
            )
    if trainer.is_global_zero:
        write_json(Path(output_dir) / TEST_METRICS_FILE, metrics)
    return metrics
