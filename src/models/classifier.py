"""The LightningModule: any backbone network, the loss, metrics and optimisation."""

from __future__ import annotations

from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from src.data.transforms import UNIT_RANGE
from src.models.metrics import build_metrics
from src.models.optim import build_optimizer, build_scheduler


def _plain(value: Any) -> Any:
    """Hydra configs to plain containers, so checkpoints load with ``weights_only=True``."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


class SpeciesClassifier(pl.LightningModule):
    """Classifies images into ``class_names``; everything needed to rebuild it is a hparam.

    ``net`` is a Hydra config of an ``nn.Module`` taking ``num_classes``; it is built here
    (not passed in) so a checkpoint alone can recreate the model.
    """

    def __init__(
        self,
        net: dict,
        class_names: list[str],
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        label_smoothing: float = 0.0,
        class_weights: list[float] | None = None,
        monitor: str = "val/f1_macro",
    ) -> None:
        super().__init__()
        net, optimizer, scheduler = _plain(net), _plain(optimizer), _plain(scheduler)
        if class_weights is not None:
            class_weights = [float(w) for w in class_weights]
        self.save_hyperparameters(
            {
                "net": net,
                "class_names": list(class_names),
                "optimizer": optimizer,
                "scheduler": scheduler,
                "label_smoothing": label_smoothing,
                "class_weights": class_weights,
                "monitor": monitor,
            }
        )
        self.net: nn.Module = hydra.utils.instantiate(net, num_classes=len(class_names))
        weights = torch.tensor(class_weights) if class_weights is not None else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)
        self.val_metrics = build_metrics(len(class_names), "val")
        self.test_metrics = build_metrics(len(class_names), "test")

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    @property
    def data_config(self) -> dict[str, Any]:
        """mean/std/interpolation the network expects (timm's data config for backbones)."""
        return dict(getattr(self.net, "data_config", UNIT_RANGE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(logits.float(), y)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y)
        if hasattr(self.net, "regularization"):
            loss = loss + self.net.regularization()
        acc = (logits.argmax(1) == y).float().mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", acc, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch, stage: str, metrics) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", self._loss(logits, y), on_epoch=True, prog_bar=True)
        metrics.update(logits.float().softmax(1), y)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=False)
        self.val_metrics.reset()

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def configure_optimizers(self):
        options = dict(self.hparams.optimizer or {"name": "adam", "lr": 1e-3})
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_optimizer(trainable, **options)
        schedule = dict(self.hparams.scheduler or {"name": "none"})
        schedule.setdefault("monitor", self.hparams.monitor)
        max_epochs = self.trainer.max_epochs if self.trainer and self.trainer.max_epochs else 100
        scheduler = build_scheduler(optimizer, max_epochs=max_epochs, **schedule)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
