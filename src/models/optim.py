"""Optimizer and learning-rate scheduler factories, chosen by name in the config."""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real
from typing import Any

import torch

from src.errors import ConfigError, check_choice

OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "sgd": (torch.optim.SGD, {"momentum": 0.9}),
    "rmsprop": (torch.optim.RMSprop, {}),
}
SCHEDULERS = ("none", "exponential", "cosine", "plateau")


def check_learning_rate(lr: object) -> float:
    """A positive, finite learning rate; torch would otherwise fail with a traceback."""
    if isinstance(lr, bool) or not isinstance(lr, Real) or not 0 < lr < math.inf:
        raise ConfigError(
            f"model.optimizer.lr={lr!r} is not allowed: use a positive number such as 1e-3."
        )
    return float(lr)


def check_optimizer(spec: dict | None) -> None:
    """The optimizer's name and learning rate, checked before any data is read or trained."""
    spec = spec or {}
    check_choice("model.optimizer.name", spec.get("name", "adam"), list(OPTIMIZERS))
    check_learning_rate(spec.get("lr", 1e-3))


def build_optimizer(
    params: Iterable, name: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0, **kwargs
) -> torch.optim.Optimizer:
    cls, defaults = OPTIMIZERS[check_choice("model.optimizer.name", name, list(OPTIMIZERS))]
    check_learning_rate(lr)
    return cls(params, lr=lr, weight_decay=weight_decay, **{**defaults, **kwargs})


def warmup_cosine(warmup_epochs: int, max_epochs: int, min_factor: float = 0.0):
    """Epoch -> lr factor: linear warm-up, then cosine down to ``min_factor``."""

    def factor(epoch: int) -> float:
        if epoch < warmup_epochs:
            return (epoch + 1) / (warmup_epochs + 1)
        progress = (epoch - warmup_epochs) / max(1, max_epochs - warmup_epochs)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str = "exponential",
    max_epochs: int = 100,
    monitor: str = "val/loss",
    gamma: float = 0.95,
    warmup_epochs: int = 1,
    min_factor: float = 0.0,
    patience: int = 2,
    factor: float = 0.5,
) -> dict[str, Any] | None:
    """A Lightning ``lr_scheduler`` config stepping once per epoch, or None for ``none``."""
    if check_choice("model.scheduler.name", name, SCHEDULERS) == "none":
        return None
    if name == "exponential":
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    elif name == "cosine":
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(warmup_epochs, max_epochs, min_factor)
        )
    elif name == "plateau":
        mode = "min" if monitor.endswith("loss") else "max"
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, patience=patience, factor=factor
        )
    else:
        raise AssertionError(name)
    return {"scheduler": scheduler, "interval": "epoch", "monitor": monitor}
