"""After fitting: calibrate on val, then test on every named test set of the data module."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from src.data.synthetic import outlier_flags
from src.data.taxonomy import class_taxa
from src.evaluation.answers import trust_metrics
from src.evaluation.calibration import CALIBRATION_KEY, Calibration, Calibrator, softmax
from src.evaluation.scope import scope_auroc
from src.evaluation.taxonomy import taxonomy_metrics
from src.evaluation.writers import (
    TEST_METRICS_FILE,
    named_metrics,
    write_reliability_diagram,
    write_test_report,
)
from src.runs.checkpoints import AtomicCheckpointIO, read_checkpoint
from src.runs.files import write_json
from src.runs.loggers import log_metrics

log = logging.getLogger(__name__)


@torch.no_grad()
def collect_logits(
    model: pl.LightningModule, loader: DataLoader, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """The model's logits and the labels of every batch of ``loader``, in its order."""
    model = model.to(device).eval()
    logits, labels = [], []
    for images, y, *_ in loader:
        logits.append(model(images.to(device)).float().cpu())
        labels.append(y)
    if not logits:
        return np.zeros((0, len(model.class_names))), np.zeros(0, dtype=np.int64)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def calibrate(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule,
    calibrator: Calibrator,
    ckpt_path: str | None = None,
) -> Calibration:
    """Fit ``calibrator`` on the val split with the weights of ``ckpt_path`` (the best
    checkpoint; the model's own weights without one), set it on the model and add it to
    that checkpoint (rewritten whole, under the same name). Rank 0 fits; every rank gets it.
    """
    checkpoint = read_checkpoint(ckpt_path) if ckpt_path else None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["state_dict"])
    datamodule.setup("validate")
    calibration = None
    if trainer.is_global_zero:
        logits, labels = collect_logits(
            model, datamodule.val_dataloader(), trainer.strategy.root_device
        )
        calibration = calibrator.fit(logits, labels)
        log.info(
            "Calibrated on %d val images: temperature %.3f", len(labels), calibration.temperature
        )
        if checkpoint is not None:
            checkpoint[CALIBRATION_KEY] = calibration.to_dict()
            AtomicCheckpointIO().save_checkpoint(checkpoint, ckpt_path)
    model.calibration = trainer.strategy.broadcast(calibration)
    return model.calibration


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
    :mod:`src.evaluation.taxonomy` and, when the model is calibrated, the calibration,
    prediction-set and answer metrics of :func:`src.evaluation.answers.trust_metrics` and
    the out-of-scope detection AUROC where the data says which images are outliers. These
    also go to the loggers. The per-class table and figures describe ``test``.
    """
    datamodule.setup("test")
    metrics: dict[str, float] = {}
    for name in datamodule.test_sets:
        trainer.test(model, dataloaders=datamodule.test_dataloader(name), ckpt_path=ckpt_path)
        metrics.update(named_metrics(name, trainer.callback_metrics))
        logits, labels = model.test_outputs()
        extra = prediction_metrics(model, datamodule, name, logits, labels)
        metrics.update(extra)
        if trainer.is_global_zero:
            log_metrics(trainer.loggers, extra, trainer.global_step)
        if name == "test" and trainer.is_global_zero:
            write_reports(trainer, model, datamodule, output_dir, logits, labels)
    if trainer.is_global_zero:
        write_json(Path(output_dir) / TEST_METRICS_FILE, metrics)
    return metrics


def probabilities_of(model: pl.LightningModule, logits: np.ndarray) -> np.ndarray:
    """The model's probabilities: calibrated when it has a calibration."""
    calibration = model.calibration
    return softmax(logits) if calibration is None else calibration.probabilities(logits)


def prediction_metrics(
    model: pl.LightningModule, datamodule, name: str, logits: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """What ``test_metrics.json`` adds to Lightning's metrics for the test set ``name``."""
    scores = taxonomy_metrics(
        probabilities_of(model, logits),
        labels,
        model.class_names,
        datamodule.index,
        datamodule.target,
        name,
    )
    calibration = model.calibration
    if calibration is not None:
        taxonomy, target = datamodule.taxonomy, datamodule.target
        scores.update(
            trust_metrics(logits, labels, calibration, model.class_names, taxonomy, target, name)
        )
        scores.update(scope_metrics(datamodule, name, calibration, logits))
    return scores


def write_reports(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule,
    output_dir: str | Path,
    logits: np.ndarray,
    labels: np.ndarray,
) -> None:
    """The per-class table and figures of ``test`` (and the reliability diagram)."""
    probabilities = probabilities_of(model, logits)
    loggers, step = trainer.loggers, trainer.global_step
    write_test_report(
        output_dir,
        probabilities,
        labels,
        datamodule.datasets["test"],
        model.class_names,
        class_taxa(model.class_names, datamodule.taxonomy),
        loggers,
        step,
    )
    if model.calibration is not None:
        uncalibrated = softmax(logits)
        write_reliability_diagram(output_dir, uncalibrated, probabilities, labels, loggers, step)


def scope_metrics(
    datamodule, name: str, calibration: Calibration, logits: np.ndarray
) -> dict[str, float]:
    """``<name>/scope_auroc``: how well the out-of-scope score separates the outliers the
    data lists (``synthetic_truth.csv``) from the animals; nothing when it lists none."""
    outliers = outlier_flags(datamodule.root, datamodule.rows[name])
    if outliers is None or len(outliers) != len(logits) or outliers.all() or not outliers.any():
        return {}
    return {f"{name}/scope_auroc": scope_auroc(calibration.scope(logits), outliers)}
