"""The feature cache of frozen backbones: the same model as training from images."""

import json
from pathlib import Path

import pytest

from tests.helpers import TINY_DATA, compose_config, resnet18_classifier
from tests.helpers import tiny_datamodule as datamodule


def train_in_process(tmp_path: Path, name: str, *overrides: str) -> tuple[dict, str]:
    """src.train's own train() on a composed config (no subprocess: Lightning imports once)."""
    from src.runs.cli import register_resolvers
    from src.train import train

    register_resolvers()
    cfg = compose_config(
        "train",
        *TINY_DATA,
        "model=timm",
        "model.net.backbone=resnet18",
        "model.net.pretrained=false",
        "data.image_size=32",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"paths.output_dir={tmp_path / name}",
        *overrides,
    )
    train(cfg)
    return json.loads((tmp_path / name / "test_metrics.json").read_text())


def test_feature_cache_trains_the_same_model(tmp_path, caplog):
    images = train_in_process(tmp_path, "images")
    with caplog.at_level("INFO"):
        features = train_in_process(tmp_path, "features", "data.feature_cache=true")
    assert "Backbone features cached" in caplog.text
    for key, value in images.items():
        assert features[key] == pytest.approx(value, abs=1e-4, nan_ok=True), key


def test_feature_cache_is_refused_with_augmentation(tiny_root, tmp_path):
    from src.data.features import feature_cache_blocker, with_feature_cache
    from src.models.classifier import SpeciesClassifier

    frozen = resnet18_classifier(["a", "b"], freeze="all")
    oversampled = datamodule(tiny_root, tmp_path, imbalance="oversample")
    assert "augmented" in feature_cache_blocker(frozen, oversampled)
    assert with_feature_cache(frozen, oversampled) is oversampled
    partial = resnet18_classifier(["a", "b"], freeze="partial", unfreeze_last=2)
    assert "not fully frozen" in feature_cache_blocker(partial, datamodule(tiny_root, tmp_path))
    baseline = SpeciesClassifier({"_target_": "src.models.baseline.BaselineCNN"}, ["a", "b"])
    assert "no separate backbone" in feature_cache_blocker(
        baseline, datamodule(tiny_root, tmp_path)
    )
    assert feature_cache_blocker(frozen, datamodule(tiny_root, tmp_path)) is None


def test_oversampled_training_draws_its_copies_from_the_bank(tmp_path, caplog):
    with caplog.at_level("INFO"):
        metrics = train_in_process(
            tmp_path, "bank", "data.imbalance=oversample", "data.feature_bank_views=2"
        )
    assert "Feature bank: 2 views" in caplog.text
    assert "training from images" not in caplog.text
    assert 0.0 <= metrics["test/acc"] <= 1.0
