"""One real epoch of ``python -m src.train``, and the original's schedule projected from it."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from src.benchmarks.measure import (
    ORIGINAL_EPOCHS,
    ORIGINAL_S,
    ORIGINAL_TRAIN,
    ORIGINAL_VAL,
    cached_synthetic,
    train_run,
)


def full_synthetic_root() -> Path:
    """Synthetic images for every row of the index (202 families), written once: with
    oversampling an epoch has the original's 48,480 training images."""
    return cached_synthetic("full", [224, 288])


def bench_epoch(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One epoch of ``python -m src.train`` (oversampled, from the decoded cache) per
    augmentation device, and the original's 13-epoch schedule projected from it."""
    root = args.root or full_synthetic_root()
    rows = []
    for augment_on in args.augment_on:
        run = Path(tempfile.mkdtemp(prefix="bench_epoch_"))
        overrides = [
            f"model={args.model}",
            "model.net.pretrained=false",  # the speed of random weights is the same
            "data=rarespecies",
            f"data.root={root}",
            f"data.image_size={args.image_size}",
            f"data.batch_size={args.batch_size}",
            f"data.num_workers={args.workers}",
            "data.imbalance=oversample",
            "data.cache=true",
            f"data.augment_on={augment_on}",
            f"trainer={'gpu' if args.device == 'cuda' else 'cpu'}",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "logger=none",
            "test=false",
            *args.overrides,
        ]
        train_run(overrides, run)
        timing = json.loads((run / "timing.json").read_text())
        epoch = timing["epochs"][0]
        projected = ORIGINAL_EPOCHS * (
            ORIGINAL_TRAIN / epoch["train_images_per_s"]
            + epoch["val_s"] * ORIGINAL_VAL / max(1, epoch["val_images"])
            + epoch["other_s"]
        )
        rows.append(
            {
                "bench": "epoch",
                "model": " ".join([args.model, *args.overrides]),
                "augment_on": augment_on,
                "workers": args.workers,
                "batch": args.batch_size,
                "precision": timing["precision"],
                "train_images": epoch["train_images"],
                "train_s": round(epoch["train_s"], 1),
                "val_s": round(epoch["val_s"], 1),
                "train_images_per_s": round(epoch["train_images_per_s"], 1),
                "projected_13_epochs_s": round(projected, 1),
                "x_original": round(ORIGINAL_S / projected, 1),
            }
        )
        shutil.rmtree(run, ignore_errors=True)
    return rows
