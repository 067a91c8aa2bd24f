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
# conf/debug/tiny.yaml: tiny synthetic data, no loader workers, no progress bar
TINY_DATA = ["debug=tiny"]


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


def garbage_idat_png(path: Path) -> Path:
    """Rewrite an image as a PNG whose pixel data (IDAT) is noise; header, CRCs and IEND intact."""
    import io
    import struct
    import zlib

    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    tag = data.index(b"IDAT")
    length = struct.unpack(">I", data[tag - 4 : tag])[0]
    start, end = tag + 4 + 8, tag + 4 + length  # keep the zlib header and first bytes
    data[start:end] = np.random.default_rng(0).bytes(end - start)
    data[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(data[tag:end])))
    path.write_bytes(bytes(data))
    return path


def damage_jpeg_body(path: Path) -> Path:
    """Stray frame markers in the middle of a JPEG's scan data; the end marker stays intact."""
    data = bytearray(path.read_bytes())
    scan = data.index(b"\xff\xda") + 20
    middle = scan + (len(data) - scan) // 3
    data[middle : middle + 32] = b"\xff\xc0" * 16
    path.write_bytes(bytes(data))
    return path


def jpeg_with_trailing_bytes(path: Path) -> Path:
    """A valid JPEG followed by 8 KiB after its FFD9 end marker, as some cameras write."""
    path.write_bytes(path.read_bytes() + b"\x00camera-maker-notes" * 450)
    return path


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The ``error: ...`` line of an entry point that failed as a user should see it:
    status 1, that one line, no traceback."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    sentence = lines[0][len("error: ") :]
    assert (result.stdout + result.stderr).count(sentence) == 1, "the error is shown twice"
    return lines[0]


def tiny_datamodule(root, tmp_path, **kwargs):
    """A data module over ``root`` at 32 px, no loader workers, writing into ``tmp_path``."""
    from src.data.datamodule import RareSpeciesDataModule

    return RareSpeciesDataModule(
        root=str(root), image_size=32, num_workers=0, output_dir=str(tmp_path / "run"), **kwargs
    )


def tiny_trainer(**kwargs):
    """A Lightning trainer for in-process tests: two train batches, one val batch, no files."""
    import pytorch_lightning as pl

    settings = {
        "max_epochs": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        **kwargs,
    }
    return pl.Trainer(**settings)
