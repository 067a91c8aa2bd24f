"""The training entry point end to end on CUDA (pytest -m gpu; skipped elsewhere)."""

import json

import pytest
import torch

from tests.helpers import TINY_DATA, run_module

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_train_on_cuda_from_the_cache_with_gpu_augmentation(tmp_path):
    """Mixed precision, channels_last, decoded cache, oversampling augmented on the GPU."""
    run = tmp_path / "run"
    result = run_module(
        tmp_path,
        "src.train",
        *TINY_DATA,
        "model=timm",
        "model.net.backbone=resnet18",
        "model.net.pretrained=false",
        "model.channels_last=true",
        "data.image_size=64",
        "data.cache=true",
        "data.augment_on=gpu",
        "data.imbalance=oversample",
        "trainer=gpu",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Automatic Mixed Precision" in result.stdout + result.stderr
    info = json.loads((run / "run_info.json").read_text())
    assert info["cuda"]
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0
    timing = json.loads((run / "timing.json").read_text())
    assert len(timing["epochs"]) == 2 and timing["epochs"][0]["train_images"] > 0
