"""Small helpers shared by the entry points."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src.atomic import output_error_behind
from src.errors import UserFacingError

log = logging.getLogger(__name__)


def auto_precision() -> str:
    """bf16 mixed precision on GPUs that support it, fp16 mixed on older ones, fp32 on CPU."""
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def synthetic_dir_name(scale: str, seed: int, sizes=None, outlier_fraction: float = 0.15) -> str:
    """A cache folder name per synthetic data set, so different settings never collide."""
    name = f"synthetic-{scale}-seed{seed}"
    if sizes:
        name += f"-{sizes[0]}to{sizes[1]}px"
    if outlier_fraction != 0.15:
        name += f"-outliers{outlier_fraction:g}"
    return name


def register_resolvers() -> None:
    for name, function in (
        ("auto_precision", auto_precision),
        ("synthetic_dir", synthetic_dir_name),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


def run_cli(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run an entry point's task; bad data or options end in one line, not a traceback."""
    try:
        return task(cfg)
    except Exception as err:
        cause = user_facing_cause(err)
        if cause is None or in_multirun():
            raise  # a sweep records the failure and goes on with the next job
        log.error("%s", cause)
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(1)


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def user_facing_cause(err: BaseException) -> UserFacingError | None:
    """The UserFacingError behind ``err`` (Hydra wraps errors raised while instantiating);
    else the OutputError sentence for a full or read-only disk met by any library."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, UserFacingError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return output_error_behind(err)


RUN_INFO_FILE = "run_info.json"
PACKAGES = (
    "torch",
    "torchvision",
    "pytorch-lightning",
    "timm",
    "hydra-core",
    "optuna",
    "open_clip_torch",
    "torchmetrics",
    "albumentations",
    "numpy",
    "pandas",
    "pillow",
)


def run_info() -> dict[str, Any]:
    """What a run needs to be reproduced: code version, packages, command line."""
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=here, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "git_commit": git("rev-parse", "HEAD") or None,
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        "packages": packages,
        "command": " ".join(getattr(sys, "orig_argv", sys.argv)),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
