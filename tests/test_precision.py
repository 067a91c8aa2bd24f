"""Precision and speed switches; the CUDA parts run only where a GPU is (pytest -m gpu)."""

import math

import pytest
import torch

from src.models.classifier import SpeciesClassifier
from src.runs.precision import auto_precision
from tests.helpers import resnet18_classifier

NAMES = [f"c{i}" for i in range(4)]


def classifier(**kwargs) -> SpeciesClassifier:
    return resnet18_classifier(NAMES, **kwargs)


def test_auto_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_precision() == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert auto_precision() == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert auto_precision() == "16-mixed"


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    plain = classifier().eval()
    fast = classifier(channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(plain(x), fast(x), atol=1e-5)
    assert "_compiled" not in dict(fast.named_modules())


@pytest.mark.slow
def test_compile_gives_the_same_outputs_and_plain_checkpoint_keys():
    torch.manual_seed(0)
    plain = classifier().eval()
    compiled = classifier(compile=True).eval()
    compiled.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(plain(x), compiled(x), atol=1e-4)
    assert set(compiled.state_dict()) == set(plain.state_dict())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_precision_channels_last_compile_on_cuda():
    import pytorch_lightning as pl

    torch.manual_seed(0)
    model = classifier(channels_last=True, compile=True)
    x = torch.randn(16, 3, 64, 64)
    y = torch.randint(0, 4, (16,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)

    class Spy(pl.Callback):  # Lightning moves the model back to the CPU after fit
        seen: list[tuple[str, float]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, *args):
            device = next(pl_module.net.parameters()).device.type
            self.seen.append((device, float(outputs["loss"])))

    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        precision=auto_precision(),
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        callbacks=[Spy()],
    )
    trainer.fit(model, train_dataloaders=loader)
    assert auto_precision() in ("bf16-mixed", "16-mixed")
    assert len(Spy.seen) == 2
    assert all(device == "cuda" and math.isfinite(loss) for device, loss in Spy.seen)
    assert model._compiled  # the compiled network did the training steps
