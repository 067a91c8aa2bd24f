"""Classification metrics (torchmetrics), named as they appear in logs and reports."""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from src.evaluation.taxonomy import PHYLUM_ACC

METRIC_NAMES = ("acc", "top5_acc", "precision_macro", "recall_macro", "f1_macro", "auroc")
# what checkpoints, early stopping, sweeps and summaries follow (``monitor`` in the config)
MONITOR = "val/f1_macro"
TEST_KEYS = tuple(f"test/{name}" for name in METRIC_NAMES)  # the target-level test keys
# what result tables (src.report, sweep summaries) show of test_metrics.json: of the taxonomy
# keys (src.evaluation.taxonomy) phylum accuracy, of the calibration keys
# (src.evaluation.answers) the calibration error and the prediction sets' coverage and size
TABLE_KEYS = (*TEST_KEYS, PHYLUM_ACC, "test/ece", "test/set_coverage", "test/set_size")


def build_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """acc, top5_acc, precision/recall/f1 (macro) and auroc (macro), keys ``<prefix>/<name>``."""
    metrics = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "top5_acc": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
        "precision_macro": MulticlassPrecision(num_classes, average="macro"),
        "recall_macro": MulticlassRecall(num_classes, average="macro"),
        "f1_macro": MulticlassF1Score(num_classes, average="macro"),
        "auroc": MulticlassAUROC(num_classes, average="macro"),
    }
    # compute_groups=False: torchmetrics would otherwise merge metrics whose states match on
    # the first batch (top-1 and top-5 accuracy when every first answer is right) and then
    # report one for the other
    return MetricCollection(
        {name: metrics[name] for name in METRIC_NAMES}, prefix=f"{prefix}/", compute_groups=False
    )


def score_probabilities(
    probabilities, labels, num_classes: int, prefix: str = "test"
) -> dict[str, float]:
    """The metrics of :func:`build_metrics` for whole-set predictions (``(N, C)``
    probabilities, ``(N,)`` labels), plus ``<prefix>/loss``: the mean cross-entropy
    -log p(true class), what a trained run logs as ``test/loss`` (without its class weights
    or label smoothing). Values are floats, keys ``<prefix>/<name>``.
    """
    probabilities = torch.as_tensor(probabilities, dtype=torch.float32)
    labels = torch.as_tensor(labels, dtype=torch.long)
    metrics = build_metrics(num_classes, prefix)
    metrics.update(probabilities, labels)
    scores = {key: float(value) for key, value in metrics.compute().items()}
    true = probabilities.gather(1, labels[:, None]).clamp_min(1e-12)
    scores[f"{prefix}/loss"] = float(-true.log().mean()) if len(labels) else float("nan")
    return scores
