"""The original Keras project's results table, and this project's runs beside it.

Each row of the original's report is an experiment preset, ``experiment=original/<row>``
(``conf/experiment/original/``), which records ``original_row`` in the run's config; the
results table (``python -m src.report ... --original``) then puts the original's numbers, a
run's own and their difference side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

SOURCE = "the original project's report (Keras, laptop RTX 3060; test on its own split)"
ROW_COLUMN = "original_row"


@dataclass(frozen=True)
class OriginalRow:
    label: str
    val_acc: float
    val_f1_macro: float
    test_acc: float
    test_f1_macro: float
    train_seconds: int
    epochs: int


ORIGINAL: dict[str, OriginalRow] = {
    "baseline_original": OriginalRow(
        "Baseline CNN, original", 0.232, 0.144, 0.236, 0.135, 2051, 37
    ),
    "vgg19_original": OriginalRow("VGG19, original", 0.601, 0.556, 0.612, 0.576, 552, 27),
    "resnet152v2_oversampled": OriginalRow(
        "ResNet152V2, oversampled", 0.614, 0.570, 0.617, 0.587, 1089, 11
    ),
    "efficientnetv2_b0_oversampled": OriginalRow(
        "EfficientNetV2B0, oversampled", 0.738, 0.699, 0.751, 0.737, 938, 17
    ),
    "convnext_original": OriginalRow(
        "ConvNeXtBase, original", 0.821, 0.800, 0.848, 0.827, 3123, 19
    ),
    "convnext_oversampled": OriginalRow(
        "ConvNeXtBase, oversampled", 0.820, 0.804, 0.846, 0.829, 11431, 13
    ),
    "convnext_onlyanimals_oversampled": OriginalRow(
        "ConvNeXtBase, only animals + oversampled (headline)", 0.823, 0.776, 0.831, 0.787, 2452, 4
    ),
}
COMPARED = (("test/acc", "test_acc"), ("test/f1_macro", "test_f1_macro"))


def with_original(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with, for each metric of :data:`COMPARED`, the original's value and ours
    minus theirs, on the rows that ran an original preset (empty on the others). A run on
    synthetic images gets the original's values but no difference: it measured something
    else."""
    table = table.copy()
    rows = table[ROW_COLUMN] if ROW_COLUMN in table else pd.Series([None] * len(table))
    original = [ORIGINAL.get(str(row)) for row in rows]
    data = table["data"].astype(str) if "data" in table else pd.Series([""] * len(table))
    real = ~data.str.contains("synthetic").to_numpy()
    table["original"] = [o.label if o else "" for o in original]
    for ours, theirs in COMPARED:
        values = [getattr(o, theirs) if o else None for o in original]
        table[f"{ours} (original)"] = values
        if ours in table:
            table[f"{ours} - original"] = [
                None if v is None or pd.isna(mine) or not on_real else round(float(mine) - v, 4)
                for mine, v, on_real in zip(table[ours], values, real)
            ]
    table["original train s (epochs)"] = [
        f"{o.train_seconds:,} ({o.epochs})" if o else "" for o in original
    ]
    return table


def original_table() -> str:
    """The original's table as Markdown (what ``--original`` prints below the runs)."""
    lines = [
        "| preset (experiment=original/...) | row | val acc / F1 | test acc / F1 | train time |",
        "|---|---|---|---|---|",
    ]
    for name, o in ORIGINAL.items():
        lines.append(
            f"| {name} | {o.label} | {o.val_acc:.3f} / {o.val_f1_macro:.3f} | "
            f"{o.test_acc:.3f} / {o.test_f1_macro:.3f} | {o.train_seconds:,} s ({o.epochs} ep) |"
        )
    return "\n".join(lines) + f"\n\nSource: {SOURCE}.\n"
