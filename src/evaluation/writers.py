"""Callbacks that write what a test found: ``test_metrics.json``, the per-class table and
figures (also to TensorBoard)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from src.data.schema import phylum_of
from src.evaluation import reports
from src.runs.files import read_json, write_csv, write_json

TEST_METRICS_FILE = "test_metrics.json"
REPORT_FILES = (
    "classification_report.csv",
    "confusion_matrix.png",
    "errors.png",
    "learning_curves.png",
)


class TestMetricsWriter(pl.Callback):
    """Writes every ``test/*`` metric as flat JSON (``test/acc``, ``test/f1_macro``, ...)."""

    def __init__(self, output_dir: str, filename: str = TEST_METRICS_FILE) -> None:
        self.path = Path(output_dir) / filename

    @rank_zero_only
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``test/*`` keys; a second test on the unfiltered set adds ``test_full/*``."""
        variant = getattr(trainer.datamodule, "test_variant", "test")
        metrics = {
            variant + key[len("test") :]: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("test/")
        }
        if variant != "test":
            metrics = {**read_json(self.path, {}, expect=dict), **metrics}
        write_json(self.path, metrics)


class TestReportWriter(pl.Callback):
    """After testing: per-class table, confusion matrix, worst errors and learning curves.

    The confusion matrix and the errors are also logged to TensorBoard as images.
    """

    def __init__(self, output_dir: str, max_errors: int = 16) -> None:
        self.output_dir = Path(output_dir)
        self.max_errors = max_errors

    @rank_zero_only
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(trainer.datamodule, "test_variant", "test") != "test":
            return  # the reports describe the primary test set
        probabilities, labels = pl_module.test_predictions()
        datamodule = trainer.datamodule
        names = pl_module.class_names
        phylum = phylum_of(datamodule.index) if datamodule.target == "family" else {}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        predictions = probabilities.argmax(1)
        matrix = reports.confusion_matrix(labels, predictions, len(names))
        report = reports.per_class_report(matrix, names, phylum)
        write_csv(report, self.output_dir / REPORT_FILES[0])
        figures = {
            "test/confusion_matrix": reports.plot_confusion_matrix(
                matrix, names, phylum, self.output_dir / REPORT_FILES[1]
            ),
            "test/errors": self._plot_errors(datamodule, probabilities, labels, names),
        }
        curves = reports.plot_learning_curves(
            self.output_dir / "csv" / "metrics.csv", self.output_dir / REPORT_FILES[3]
        )
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                for tag, figure in figures.items():
                    logger.experiment.add_figure(tag, figure, global_step=trainer.global_step)
        for figure in [*figures.values(), curves]:
            if figure is not None:
                plt.close(figure)

    def _plot_errors(self, datamodule, probabilities, labels, names):
        predictions = probabilities.argmax(1)
        confidence = probabilities.max(1) if len(probabilities) else np.zeros(0)
        wrong = np.flatnonzero(predictions != labels)
        worst = wrong[np.argsort(-confidence[wrong], kind="stable")][: self.max_errors]
        dataset = datamodule.datasets["test"]
        images = [
            dataset.pipeline.to_uint8(dataset.load(int(i))).permute(1, 2, 0).numpy() for i in worst
        ]
        titles = [
            f"true: {names[labels[i]]}\npred: {names[predictions[i]]} ({confidence[i]:.2f})"
            for i in worst
        ]
        return reports.plot_errors(images, titles, self.output_dir / REPORT_FILES[2])
