"""Classification metrics (torchmetrics), named as they appear in logs and reports."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)


def build_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """acc, top5_acc, precision/recall/f1 (macro) and auroc (macro), keys ``<prefix>/<name>``."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "top5_acc": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "precision_macro": MulticlassPrecision(num_classes, average="macro"),
            "recall_macro": MulticlassRecall(num_classes, average="macro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            "auroc": MulticlassAUROC(num_classes, average="macro"),
        },
        prefix=f"{prefix}/",
    )
