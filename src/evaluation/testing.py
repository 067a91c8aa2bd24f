"""Testing a fitted model on every named test set of its data module."""

from __future__ import annotations

import pytorch_lightning as pl


def run_tests(trainer: pl.Trainer, model, datamodule, ckpt_path: str | None) -> None:
    """Test; when val/test were filtered, test the unfiltered test set too (both reported)."""
    for variant in datamodule.test_variants():
        datamodule.test_variant = variant
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path)
    datamodule.test_variant = "test"
