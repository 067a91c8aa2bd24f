"""What a run needs to be reproduced: code version, packages, command line (run_info.json)."""

from __future__ import annotations

import sys
from typing import Any

import torch

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
    import os
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
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
