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


def run_module(tmp_path: Path, module: str, *args: str, timeout: int = 600):
    """``python -m module args`` from the project root, with a private data cache."""
    env = {**os.environ, "RARE_SPECIES_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
