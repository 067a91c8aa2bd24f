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

METRIC_NAMES = ("acc", "top5_acc", "precision_macro", "recall_macro", "f1_macro", "auroc")
# what checkpoints, early stopping, sweeps and summaries follow (``monitor`` in the config)
MONITOR = "val/f1_macro"
TEST_KEYS = tuple(f"test/{name}" for name in METRIC_NAMES)


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
    return MetricCollection({name: metrics[name] for name in METRIC_NAMES}, prefix=f"{prefix}/")
