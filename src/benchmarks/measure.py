"""What every benchmark shares: the machine it ran on, timing, the reference numbers of the
original project, the synthetic images it measures on, and the markdown table."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# the original's oversampled ConvNeXt-Base run: 13 epochs of 48,480 training images
# (202 families x 240) and 1,198 validation images, 11,431 s on a laptop RTX 3060
ORIGINAL_EPOCHS, ORIGINAL_TRAIN, ORIGINAL_VAL, ORIGINAL_S = 13, 48_480, 1_198, 11_431
# peak dense bf16 tensor throughput, FLOP/s, for the share-of-peak column
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "RTX 3060": 51e12}


def machine() -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def timed(function: Callable[[], int], repeat: int = 1) -> float:
    """Items per second of ``function`` (which returns how many items it processed)."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        count = function()
        best = max(best, count / (time.perf_counter() - start))
    return best


CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def cache_dir() -> Path:
    """The project's cache folder, resolved as ``conf/paths/default.yaml`` resolves it."""
    from omegaconf import OmegaConf

    return Path(OmegaConf.load(CONF_DIR / "paths" / "default.yaml").cache_dir)


def cached_synthetic(scale: str, sizes: list[int]) -> Path:
    """A synthetic data set in the project's cache folder, written once (as ``data=synthetic``)."""
    from src.data.synthetic import ensure_synthetic, synthetic_dir_name

    return ensure_synthetic(cache_dir() / synthetic_dir_name(scale, 0, sizes), scale, sizes=sizes)


def to_markdown(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [f"Machine: {', '.join(f'{k} {v}' for k, v in info.items())}", ""]
    for bench in dict.fromkeys(r["bench"] for r in rows):
        part = [r for r in rows if r["bench"] == bench]
        keys = [k for k in part[0] if k != "bench"]
        lines += [f"### {bench}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in part]
        lines.append("")
    return "\n".join(lines)


def train_run(overrides: list[str], run_dir: Path, multirun: bool = False) -> float:
    """Wall seconds of one ``python -m src.train`` (``-m``: a whole sweep or study, in
    ``run_dir``) in a fresh process, as a user runs it."""
    where = f"hydra.sweep.dir={run_dir}" if multirun else f"hydra.run.dir={run_dir}"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "src.train", *(["-m"] if multirun else []), *overrides, where],
        cwd=CONF_DIR.parent,  # the project root
        check=True,
    )
    return time.perf_counter() - start
