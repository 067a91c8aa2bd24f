"""Helpers shared by the tests: compose the real configs, run an entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

if TYPE_CHECKING:
    from src.models.classifier import SpeciesClassifier

ROOT = Path(__file__).parents[1]
# conf/debug/tiny.yaml: tiny synthetic data, no loader workers, no progress bar
TINY_DATA = ["debug=tiny"]
# a short training run on the tiny data: 2 epochs of 3 batches, tested on 2 batches
TINY_TRAIN = [
    *TINY_DATA,
    "data.batch_size=16",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
]
# the class names and model configs (conf/model) of the in-process model tests
NAMES = [f"c{i}" for i in range(7)]
MODELS = ["baseline", "vgg19", "resnet152v2", "convnext", "efficientnetv2_b0"]


def compose_config(config_name: str, *overrides: str, hydra: bool = False) -> DictConfig:
    """The project's real config, composed as the entry point would compose it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(
            config_name=config_name, overrides=list(overrides), return_hydra_config=hydra
        )


def model_config(name: str, *overrides: str):
    """The ``model`` node of conf/model/``name``, with timm nets not pretrained (no download)."""
    extra = ["model.net.pretrained=false"] if name != "baseline" else []
    return compose_config("train", f"model={name}", *extra, *overrides).model


def build(name: str, *overrides: str) -> SpeciesClassifier:
    """The classifier conf/model/``name`` instantiates, over the classes ``NAMES``."""
    from hydra.utils import instantiate

    return instantiate(model_config(name, *overrides), class_names=NAMES, _recursive_=False)


def trainable(module) -> int:
    """How many of ``module``'s parameters are trained (require gradients)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


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


def exported(tmp_path: Path, checkpoint: Path, fmt: str = "torchscript") -> tuple[Path, dict]:
    """``python -m src.export`` of ``checkpoint`` into ``tmp_path/run``: the model file and
    the contract it wrote beside it."""
    result = run_module(
        tmp_path,
        "src.export",
        f"ckpt_path={checkpoint}",
        f"format={fmt}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model_file = next(p for p in (tmp_path / "run").glob("model.*") if p.suffix != ".json")
    contract = json.loads(model_file.with_suffix(".preprocessing.json").read_text())
    return model_file, contract


def embedded_rows(page: Path) -> list[dict]:
    """The rows ``predictions.html`` carries (the JSON its script draws the table from)."""
    import re

    text = page.read_text()
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    return json.loads(data.group(1))


def offline_error(code: str) -> str:
    """The stderr of Python ``code`` run in a fresh process with the Hugging Face hub off;
    the process must fail."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode != 0
    return result.stderr


def same_test_metrics(
    trained_dir: Path, evaluated_dir: Path, tolerance: float, newer_keys: bool = False
) -> None:
    """Both run folders' ``test_metrics.json`` hold the same keys and values (``newer_keys``:
    the evaluation may add keys that the code which trained did not write yet)."""
    import pytest

    trained = json.loads((trained_dir / "test_metrics.json").read_text())
    evaluated = json.loads((evaluated_dir / "test_metrics.json").read_text())
    if newer_keys:
        assert trained.keys() <= evaluated.keys()
    else:
        assert evaluated.keys() == trained.keys()
    for key, value in trained.items():
        assert evaluated[key] == pytest.approx(value, abs=tolerance, nan_ok=True), key


def resnet18_classifier(
    class_names: list[str], freeze: str = "all", unfreeze_last: int = 0, **kwargs
):
    """A randomly initialised resnet18 SpeciesClassifier (no download): the tests' timm net.

    ``freeze``/``unfreeze_last`` go to the network (``net``), ``kwargs`` to the classifier.
    """
    from src.models.classifier import SpeciesClassifier

    net = {
        "_target_": "src.models.timm_net.TimmNet",
        "backbone": "resnet18",
        "pretrained": False,
        "freeze": freeze,
        "unfreeze_last": unfreeze_last,
    }
    return SpeciesClassifier(net, class_names, **kwargs)


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


def unusable_checkpoint(path: Path, kind: str, whole: Path) -> Path:
    """``path`` as a checkpoint that cannot be used: empty, cut short, not one, or unsafe."""
    import argparse

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":  # what an in-place write stopped by a full disk leaves
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    elif kind == "garbage":
        path.write_bytes(b"not a checkpoint\n" * 64)
    elif kind == "unsafe":  # loading it would unpickle (run) arbitrary code
        torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, path)
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
    """A data module over ``root`` at 32 px, no loader workers (unless given), writing into
    ``tmp_path``."""
    from src.data.datamodule import RareSpeciesDataModule

    settings = {"image_size": 32, "num_workers": 0, "output_dir": str(tmp_path / "run")}
    return RareSpeciesDataModule(root=str(root), **{**settings, **kwargs})


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
