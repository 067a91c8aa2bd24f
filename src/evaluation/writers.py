"""What a test found, written into the run folder: ``test_metrics.json``, the per-class
table and figures (the figures also to TensorBoard)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from pytorch_lightning.loggers import Logger, TensorBoardLogger

from src.data.dataset import RareSpeciesDataset
from src.evaluation import reports
from src.evaluation.calibration import reliability_bins
from src.runs.files import write_csv, write_json

TEST_METRICS_FILE = "test_metrics.json"
REPORT_FILES = (
    "classification_report.csv",
    "confusion_matrix.png",
    "errors.png",
    "learning_curves.png",
)
RELIABILITY_FILE = "reliability.png"
MAX_ERRORS = 16  # the most confident mistakes shown in errors.png


def named_metrics(test_set: str, logged: Mapping[str, object]) -> dict[str, float]:
    """The ``test/*`` values a test logged, renamed for its test set (``test_full/acc``)."""
    prefix = "test/"
    return {
        f"{test_set}/{key[len(prefix) :]}": float(value)
        for key, value in logged.items()
        if key.startswith(prefix)
    }


def write_test_report(
    output_dir: str | Path,
    probabilities: np.ndarray,
    labels: np.ndarray,
    dataset: RareSpeciesDataset,
    class_names: Sequence[str],
    taxa: Mapping[str, Mapping[str, str]],
    loggers: Sequence[Logger] = (),
    step: int = 0,
) -> None:
    """Per-class table, confusion matrix, worst errors and learning curves of one test set.

    ``probabilities``/``labels`` are in the order of ``dataset``; ``taxa`` maps each rank
    above the target (nearest first) to every class's group: the table gets a column per
    rank, the confusion matrix is grouped by phylum. The confusion matrix and the errors also
    go to every TensorBoard logger.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    predictions = probabilities.argmax(1)
    matrix = reports.confusion_matrix(labels, predictions, len(class_names))
    write_csv(reports.per_class_report(matrix, class_names, taxa), output_dir / REPORT_FILES[0])
    phylum = dict(taxa.get("phylum", {}))
    figures = {
        "test/confusion_matrix": reports.plot_confusion_matrix(
            matrix, class_names, phylum, output_dir / REPORT_FILES[1]
        ),
        "test/errors": plot_worst_errors(
            probabilities, labels, dataset, class_names, output_dir / REPORT_FILES[2]
        ),
    }
    curves = reports.plot_learning_curves(
        output_dir / "csv" / "metrics.csv", output_dir / REPORT_FILES[3]
    )
    add_figures(loggers, figures, step)
    for figure in [*figures.values(), curves]:
        if figure is not None:
            plt.close(figure)


def add_figures(loggers: Sequence[Logger], figures: Mapping[str, plt.Figure], step: int) -> None:
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for tag, figure in figures.items():
                logger.experiment.add_figure(tag, figure, global_step=step)


def write_reliability_diagram(
    output_dir: str | Path,
    uncalibrated: np.ndarray,
    calibrated: np.ndarray,
    labels: np.ndarray,
    loggers: Sequence[Logger] = (),
    step: int = 0,
) -> None:
    """``reliability.png`` (and TensorBoard's ``test/reliability``): the test set's
    reliability before and after the temperature, 15 bins."""
    curves = {
        "before calibration": reliability_bins(uncalibrated, labels),
        "after calibration": reliability_bins(calibrated, labels),
    }
    figure = reports.plot_reliability(curves, Path(output_dir) / RELIABILITY_FILE)
    add_figures(loggers, {"test/reliability": figure}, step)
    plt.close(figure)


def write_test_results(
    output_dir: str | Path,
    metrics: Mapping[str, float],
    probabilities: np.ndarray,
    labels: np.ndarray,
    dataset: RareSpeciesDataset,
    class_names: Sequence[str],
    taxa: Mapping[str, Mapping[str, str]],
) -> None:
    """What a test run leaves without a Lightning trainer (the baselines): ``test_metrics.json``
    and the per-class table and figures of the ``test`` predictions."""
    write_test_report(output_dir, probabilities, labels, dataset, class_names, taxa)
    write_json(Path(output_dir) / TEST_METRICS_FILE, dict(metrics))


def plot_worst_errors(
    probabilities: np.ndarray,
    labels: np.ndarray,
    dataset: RareSpeciesDataset,
    class_names: Sequence[str],
    path: Path,
):
    """The most confident mistakes, each image with its true and predicted class."""
    predictions = probabilities.argmax(1)
    confidence = probabilities.max(1) if len(probabilities) else np.zeros(0)
    wrong = np.flatnonzero(predictions != labels)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:MAX_ERRORS]
    images = [
        dataset.pipeline.to_uint8(dataset.load(int(i))).permute(1, 2, 0).numpy() for i in worst
    ]
    titles = [
        f"true: {class_names[labels[i]]}\npred: {class_names[predictions[i]]} ({confidence[i]:.2f})"
        for i in worst
    ]
    return reports.plot_errors(images, titles, path)
