"""Decoded-image cache, feature cache and the frozen-backbone mode they rely on."""

import json
import os
from pathlib import Path

import pytest
import torch

from src.data.cache import FINGERPRINT_FILE
from src.data.datamodule import RareSpeciesDataModule
from tests.helpers import TINY_DATA, compose_config, resnet18_classifier


def datamodule(root, tmp_path, **kwargs) -> RareSpeciesDataModule:
    return RareSpeciesDataModule(
        root=str(root), image_size=32, num_workers=0, output_dir=str(tmp_path / "run"), **kwargs
    )


def test_cache_gives_the_same_tensors_as_jpegs(tiny_root, tmp_path):
    plain, cached = datamodule(tiny_root, tmp_path), datamodule(tiny_root, tmp_path, cache=True)
    plain.setup("fit")
    cached.setup("fit")
    assert cached.datasets["train"].cache is not None
    for split in ("train", "val", "test"):
        assert cached.datasets[split].labels == plain.datasets[split].labels
        for i in range(len(plain.datasets[split])):
            assert torch.equal(cached.datasets[split][i][0], plain.datasets[split][i][0])


def test_stale_cache_is_rebuilt(tiny_root, tmp_path):
    first = datamodule(tiny_root, tmp_path, cache=True).decoded_cache()
    stamp = (first.folder / FINGERPRINT_FILE).read_text()
    again = datamodule(tiny_root, tmp_path, cache=True).decoded_cache()
    assert (again.folder / FINGERPRINT_FILE).read_text() == stamp  # reused
    rel = next(iter(first.rows))
    os.utime(tiny_root / rel, ns=(1, 1))  # the source changed
    rebuilt = datamodule(tiny_root, tmp_path, cache=True).decoded_cache()
    assert (rebuilt.folder / FINGERPRINT_FILE).read_text() != stamp
    other_size = RareSpeciesDataModule(
        root=str(tiny_root), image_size=24, num_workers=0, cache=True
    ).decoded_cache()
    assert other_size.folder != first.folder and other_size[rel].shape == (24, 24, 3)


@pytest.mark.parametrize("freeze", ["all", "partial"])
def test_frozen_layers_stay_in_eval_mode_through_lightning_fit(tiny_root, tmp_path, freeze):
    import pytorch_lightning as pl

    dm = datamodule(tiny_root, tmp_path, batch_size=16)
    model = resnet18_classifier(dm.class_names, freeze=freeze, unfreeze_last=2)
    before = {k: v.clone() for k, v in model.net.backbone.state_dict().items()}
    frozen = [
        m
        for m in model.net.backbone.modules()
        if freeze == "all" or isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]

    class Spy(pl.Callback):
        modes: list[bool] = []

        def on_train_batch_end(self, trainer, pl_module, *args):
            self.modes.append(any(m.training for m in frozen))

    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        callbacks=[Spy()],
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule=dm)
    assert Spy.modes and not any(Spy.modes)
    after = model.net.backbone.state_dict()
    running = [k for k in before if "running_" in k or "num_batches" in k]
    assert running and all(torch.equal(before[k], after[k]) for k in running)  # BN stats kept


def train_in_process(tmp_path: Path, name: str, *overrides: str) -> tuple[dict, str]:
    """src.train's own train() on a composed config (no subprocess: Lightning imports once)."""
    from src.train import train
    from src.utils import register_resolvers

    register_resolvers()
    cfg = compose_config(
        "train",
        *TINY_DATA,
        "model=timm",
        "model.backbone=resnet18",
        "model.pretrained=false",
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
        features = train_in_process(tmp_path, "features", "train.feature_cache=true")
    assert "Backbone features cached" in caplog.text
    for key, value in images.items():
        assert features[key] == pytest.approx(value, abs=1e-4), key


def test_feature_cache_is_refused_with_augmentation(tiny_root, tmp_path):
    from src.data.features import feature_cache_blocker, with_feature_cache
    from src.models.classifier import SpeciesClassifier

    frozen = resnet18_classifier(["a", "b"], freeze="all")
    oversampled = datamodule(tiny_root, tmp_path, imbalance="oversample")
    assert "augmented" in feature_cache_blocker(frozen, oversampled)
    assert with_feature_cache(frozen, oversampled) is oversampled
    partial = resnet18_classifier(["a", "b"], freeze="partial", unfreeze_last=2)
    assert "not fully frozen" in feature_cache_blocker(partial, datamodule(tiny_root, tmp_path))
    baseline = SpeciesClassifier("src.models.baseline.BaselineCNN", ["a", "b"])
    assert "no separate backbone" in feature_cache_blocker(
        baseline, datamodule(tiny_root, tmp_path)
    )
    assert feature_cache_blocker(frozen, datamodule(tiny_root, tmp_path)) is None


def test_augmentation_on_the_device_matches_the_loader_path(tiny_root, tmp_path):
    cpu = datamodule(tiny_root, tmp_path, imbalance="oversample", batch_size=8)
    gpu = datamodule(tiny_root, tmp_path, imbalance="oversample", batch_size=8, augment_on="gpu")
    cpu.setup("fit")
    gpu.setup("fit")
    images, labels = next(iter(cpu.val_dataloader()))
    raw = next(iter(gpu.val_dataloader()))
    assert raw[0].dtype == torch.uint8 and not raw[2].any()
    finished, same_labels = gpu.on_after_batch_transfer(raw, 0)
    assert torch.equal(same_labels, labels) and torch.allclose(finished, images, atol=1e-6)
    train = gpu.datasets["train"]
    augmented = torch.stack([train[len(train)][0]] * 2)
    torch.manual_seed(0)
    out, _ = gpu.on_after_batch_transfer(
        (augmented, torch.tensor([0, 0]), torch.tensor([True, False])), 0
    )
    plain = train.pipeline.normalize(augmented[1])
    assert torch.allclose(out[1], plain) and not torch.allclose(out[0], plain)


def test_batched_randaugment_gives_each_image_its_own_draws():
    from torchvision.transforms import v2

    from src.data.transforms import apply_randaugment, draw_randaugment

    randaugment = v2.RandAugment(num_ops=2, magnitude=9)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (24, 3, 20, 20), dtype=torch.uint8)
    draws = draw_randaugment(randaugment, len(images))
    batched = apply_randaugment(randaugment, images, draws)
    one_by_one = torch.cat(
        [
            apply_randaugment(
                randaugment, images[i : i + 1], [(o[i : i + 1], n[i : i + 1]) for o, n in draws]
            )
            for i in range(len(images))
        ]
    )
    assert torch.equal(batched, one_by_one)  # grouping changes nothing
    assert len(torch.unique(draws[0][0])) > 3  # images drew different ops
    same = images[:1].expand(24, -1, -1, -1)
    outputs = apply_randaugment(randaugment, same, draw_randaugment(randaugment, 24))
    assert len({o.numpy().tobytes() for o in outputs}) > 3
