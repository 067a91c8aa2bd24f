"""Helpers shared by the tests: compose the real configs, run an entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

ROOT = Path(__file__).parents[1]
# a tiny synthetic data set for end-to-end runs
TINY_DATA = [
    "data=synthetic",
    "data.synthetic.scale=tiny",
    "data.synthetic.sizes=[40,56]",
    "data.num_workers=0",
]


def compose_config(config_name: str, *overrides: str, hydra: bool = False) -> DictConfig:
    """The project's real config, composed as the entry point would compose it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(
            config_name=config_name, overrides=list(overrides), return_hydra_config=hydra
        )


def cache_env(tmp_path: Path) -> dict[str, str]:
    """The environment with a private synthetic-data cache under ``tmp_path``."""
    return {**os.environ, "RARE_SPECIES_CACHE": str(tmp_path / "cache")}


def run_module(tmp_path: Path, module: str, *args: str, timeout: int = 600):
    """``python -m module args`` from the project root, with a private data cache."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=cache_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_offline(code: str) -> subprocess.CompletedProcess:
    """Python ``code`` in a fresh process with the Hugging Face hub switched off."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def resnet18_classifier(class_names: list[str], **kwargs):
    """A randomly initialised resnet18 SpeciesClassifier (no download): the tests' timm net."""
    from src.models.classifier import SpeciesClassifier

    return SpeciesClassifier(
        "src.models.timm_net.TimmNet", class_names, backbone="resnet18", pretrained=False, **kwargs
    )
