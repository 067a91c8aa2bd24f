"""Baselines on the trained runs' split and metrics:

    python -m src.baselines zeroshot|fewshot|linear_probe [group=option ...] [key=value ...]

The first argument is the method; the rest are Hydra overrides of ``conf/baselines.yaml``.
Sets up the data module (its rows: split, "only animals" filter, unusable images left out),
loads the open_clip model of ``model.net``, and runs the method of
:mod:`src.evaluation.baselines`, which writes ``test_metrics.json``, the reports and
``baseline.json`` into the run folder (``outputs/baselines/<method>/runs/<date>_<time>``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.errors import UserFacingError, check_choice
from src.evaluation import baselines as methods
from src.evaluation.embeddings import ImageEmbeddings, model_identity
from src.models.clip import load_clip
from src.models.zeroshot import CACHE_DIR
from src.runs.cli import register_resolvers, run_cli
from src.runs.files import write_json
from src.runs.provenance import RUN_INFO_FILE, run_info

log = logging.getLogger(__name__)
register_resolvers()
USAGE = "python -m src.baselines zeroshot|fewshot|linear_probe [key=value ...]"
# Hydra's flags that only print (help, config, info): they work without a method
PRINT_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--version")


class UsageError(UserFacingError, ValueError):
    """The command line does not start with a method."""


def hydra_arguments(argv: list[str]) -> list[str]:
    """The method (first argument) as the override ``method=<m>``, the rest unchanged."""
    if argv and argv[0] in methods.METHODS:
        return [f"method={argv[0]}", *argv[1:]]
    if any(arg in PRINT_FLAGS for arg in argv):
        return argv
    if not argv or "=" in argv[0] or argv[0].startswith("-"):
        raise UsageError(f"Give the method first: {USAGE}.")
    raise UsageError(f"Unknown method {argv[0]!r}: {USAGE}.")


def model_choice() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("model") if HydraConfig.initialized() else None


def setup(cfg: DictConfig) -> methods.Baseline:
    """Data module (set up), open_clip model and its embedding cache."""
    spec = methods.clip_spec(cfg.model.net, cfg.method, model_choice())
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pl.seed_everything(cfg.seed)  # a randomly initialised model's weights follow the seed
    model, preprocess, tokenizer = load_clip(spec, device)
    cache_dir = cfg.embeddings_dir or Path(datamodule.root) / CACHE_DIR / "embeddings"
    embeddings = ImageEmbeddings(
        model,
        preprocess,
        model_identity(spec, cfg.seed),
        datamodule.root,
        cache_dir,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        max_pixels=datamodule.max_image_pixels,
        device=device,
    )
    output_dir = Path(cfg.paths.output_dir)
    calibrator = instantiate(cfg.calibration) if cfg.get("calibration") else None
    return methods.Baseline(
        datamodule, model, tokenizer, embeddings, spec, output_dir, device, calibrator
    )


def run_baseline(cfg: DictConfig) -> Any:
    check_choice("method", cfg.method, methods.METHODS)
    write_json(Path(cfg.paths.output_dir) / RUN_INFO_FILE, run_info())
    baseline = setup(cfg)
    if cfg.method == "zeroshot":
        return methods.zeroshot(
            baseline, cfg.prompts.templates, cfg.prompts.names, cfg.prompts.batch_size
        )
    if cfg.method == "fewshot":
        return methods.fewshot(baseline, cfg.shots, cfg.repeats, cfg.seed, cfg.center)
    return methods.linear_probe(
        baseline, cfg.probe.C, cfg.probe.monitor, cfg.probe.max_iter, cfg.seed
    )


@hydra.main(version_base="1.3", config_path="../conf", config_name="baselines")
def hydra_main(cfg: DictConfig) -> None:
    run_cli(run_baseline, cfg)


def main() -> None:
    sys.argv[1:] = run_cli(hydra_arguments, sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()
