"""Shared fixtures: small data sets written in the real on-disk format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from src.data.datamodule import RareSpeciesDataModule
from src.data.synthetic import write_synthetic
from src.models.classifier import SpeciesClassifier
from tests.helpers import TINY_TRAIN, run_module, tiny_trainer


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Synthetic data sets go to a temporary cache, never the user's home."""
    monkeypatch.setenv("RARE_SPECIES_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """6 families, up to 30 images each, 40-56 px: written once per test session."""
    root = tmp_path_factory.mktemp("tiny_source")
    return write_synthetic(root, scale="tiny", seed=0, sizes=(40, 56), progress=False)


@pytest.fixture
def tiny_root(tiny_source, tmp_path) -> Path:
    """A private copy of the tiny data set that a test may damage."""
    return Path(shutil.copytree(tiny_source, tmp_path / "root"))


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on a Unix socket for this test session."""
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def checkpoint(tiny_source, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("trained")
    dm = RareSpeciesDataModule(
        root=str(tiny_source), image_size=32, num_workers=0, output_dir=str(tmp / "run")
    )
    dm.setup("fit")
    model = SpeciesClassifier({"_target_": "src.models.baseline.BaselineCNN"}, dm.class_names)
    trainer = tiny_trainer()
    trainer.fit(model, datamodule=dm)
    path = tmp / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """``python -m src.train`` on the tiny data (seed 7): its run folder, which tests only read."""
    tmp = tmp_path_factory.mktemp("train")
    result = run_module(tmp, "src.train", *TINY_TRAIN, f"hydra.run.dir={tmp / 'run'}", "seed=7")
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run"


# a randomly initialised open_clip architecture small enough for CPU tests
TINY_CLIP = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def clip_configs(tmp_path_factory) -> Path:
    """A folder with ``tiny-clip.json``, registered with open_clip (``tiny-clip`` loads)."""
    import open_clip

    folder = tmp_path_factory.mktemp("clip_configs")
    (folder / "tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder)
    return folder
