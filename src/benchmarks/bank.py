"""The augmentation bank end to end: oversampled head training on a frozen backbone, from
images (fresh RandAugment copies every epoch) against from V banked views."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from src.benchmarks.measure import train_run


def bank_overrides(args: argparse.Namespace) -> list[str]:
    """The same run for both paths: the default synthetic set, oversampled, frozen backbone,
    a fixed number of epochs (no early stopping), default loader workers."""
    return [
        "model=timm",
        f"model.net.backbone={args.backbone}",
        "pretrained=false",
        "model.net.freeze=all",
        "data.imbalance=oversample",
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}",
        f"trainer.max_epochs={args.epochs}",
        f"trainer={'gpu' if args.device == 'cuda' else 'cpu'}",
        "~callbacks.early_stopping",
        "trainer.enable_progress_bar=false",
        "logger=none",
        *args.overrides,
    ]


def bench_bank(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per ``--views`` entry (0: from images, the ordinary path): wall time of the
    whole ``python -m src.train`` and its test scores; ``x_images`` when 0 came first."""
    rows: list[dict[str, Any]] = []
    for views in args.views:
        run = Path(tempfile.mkdtemp(prefix="bench_bank_"))
        wall = train_run([*bank_overrides(args), f"data.feature_bank_views={views}"], run)
        metrics = json.loads((run / "test_metrics.json").read_text())
        rows.append(
            {
                "bench": "bank",
                "path": f"bank, {views} views" if views else "images (fresh RandAugment)",
                "backbone": args.backbone,
                "image_size": args.image_size,
                "epochs": args.epochs,
                "wall_s": round(wall, 1),
                "x_images": round(rows[0]["wall_s"] / wall, 2)
                if rows and rows[0]["path"].startswith("images")
                else (1.0 if not views else None),
                "test_f1_macro": round(metrics["test/f1_macro"], 4),
                "test_acc": round(metrics["test/acc"], 4),
            }
        )
        shutil.rmtree(run, ignore_errors=True)
    return rows
