"""Reports a biologist can read: per-class table, confusion matrix, worst errors, curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

from src.runs.files import write_with  # noqa: E402


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_report(
    matrix: np.ndarray, class_names: Sequence[str], taxa: Mapping[str, Mapping[str, str]]
) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (0 where undefined), worst F1 first,
    with a column per rank of ``taxa`` (rank -> {class: group}, nearest first)."""
    hits = np.diag(matrix).astype(float)
    predicted, support = matrix.sum(0), matrix.sum(1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    table = pd.DataFrame(
        {
            "class": list(class_names),
            **{
                rank: [groups.get(name, "") for name in class_names]
                for rank, groups in taxa.items()
            },
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(int),
        }
    )
    return table.sort_values(["f1", "support"], ascending=[True, False], kind="stable")


def phylum_order(class_names: Sequence[str], phylum: dict[str, str]) -> list[int]:
    return sorted(
        range(len(class_names)), key=lambda i: (phylum.get(class_names[i], ""), class_names[i])
    )


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], phylum: dict[str, str], path: Path
) -> plt.Figure:
    """Classes grouped by phylum, log colour scale so single mistakes stay visible."""
    order = phylum_order(class_names, phylum)
    ordered = matrix[np.ix_(order, order)]
    names = [class_names[i] for i in order]
    n = len(names)
    size = min(40.0, max(6.0, n * 0.12))
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(
        ordered + 0.0,
        norm=LogNorm(vmin=1, vmax=max(2, ordered.max())),
        cmap="viridis",
        interpolation="nearest",
    )
    image.cmap.set_under("white")
    ax.set_xticks(range(n), names, rotation=90, fontsize=max(3, 9 - n // 40))
    ax.set_yticks(range(n), names, fontsize=max(3, 9 - n // 40))
    groups = [phylum.get(name, name) for name in names]
    edges = [i for i in range(1, n) if groups[i] != groups[i - 1]]
    for edge in edges:
        ax.axhline(edge - 0.5, color="red", lw=0.6)
        ax.axvline(edge - 0.5, color="red", lw=0.6)
    for start, end in zip([0, *edges], [*edges, n]):
        ax.text(n + 0.5, (start + end - 1) / 2, groups[start], va="center", fontsize=10)
    ax.set_ylabel("true")
    ax.set_xlabel(f"predicted ({int(matrix.sum())} test images; rows: true class)")
    # the phylum names take the right side: the colour bar goes on top, in plain counts
    bar = fig.colorbar(image, ax=ax, location="top", fraction=0.03, pad=0.02)
    bar.ax.xaxis.set_major_formatter(ScalarFormatter())
    bar.ax.xaxis.set_minor_formatter(NullFormatter())
    bar.set_label("images (log scale)")
    fig.tight_layout()
    write_with(path, lambda temporary: fig.savefig(temporary, dpi=120))
    return fig


def plot_errors(
    images: Sequence[np.ndarray], titles: Sequence[str], path: Path, columns: int = 4
) -> plt.Figure:
    """A grid of misclassified images with their captions."""
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 3.2, rows * 3.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image)
        ax.set_title(title, fontsize=8)
    if not images:
        axes.flat[0].text(0.5, 0.5, "no misclassified test images", ha="center")
    fig.suptitle("Most confident mistakes on the test set")
    fig.tight_layout()
    write_with(path, lambda temporary: fig.savefig(temporary, dpi=100))
    return fig


def plot_learning_curves(metrics_csv: Path, path: Path) -> plt.Figure | None:
    """Loss and macro F1 per epoch from the CSV logger's file."""
    if not metrics_csv.is_file():
        return None
    frame = pd.read_csv(metrics_csv)
    if "epoch" not in frame:
        return None
    per_epoch = frame.groupby("epoch").mean(numeric_only=True)
    panels = [
        ("loss", ["train/loss_epoch", "val/loss"]),
        ("macro F1", ["val/f1_macro"]),
        ("accuracy", ["train/acc", "val/acc"]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6))
    for ax, (title, columns) in zip(axes, panels):
        for column in columns:
            if column in per_epoch:
                series = per_epoch[column].dropna()
                ax.plot(series.index, series.values, marker="o", label=column)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_with(path, lambda temporary: fig.savefig(temporary, dpi=100))
    return fig


def plot_reliability(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path
) -> plt.Figure:
    """Accuracy against confidence per bin, one line per named curve (before/after
    calibration), with the diagonal a calibrated model follows and the images per bin."""
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="calibrated")
    for label, (confidence, accuracy, count) in curves.items():
        seen = count > 0
        ax.plot(confidence[seen], accuracy[seen], marker="o", label=label)
        edges = np.linspace(0, 1, len(count) + 1)
        counts.stairs(count, edges, label=label)
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Reliability on the test set")
    counts.set_xlabel("confidence (top probability)")
    counts.set_ylabel("images")
    fig.tight_layout()
    write_with(path, lambda temporary: fig.savefig(temporary, dpi=100))
    return fig
