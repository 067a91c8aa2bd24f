"""The classification head put on top of every backbone."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.errors import check_choice

ACTIVATIONS = {"none": nn.Identity, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def global_pool(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature maps or (B, N, C) tokens -> (B, C)."""
    if features.ndim == 4:
        return features.mean(dim=(2, 3))
    if features.ndim == 3:
        return features.mean(dim=1)
    return features


class ClassifierHead(nn.Sequential):
    """Pooled features -> [Linear hidden -> activation -> Dropout] x len(hidden) -> Linear.

    The default (one hidden layer of 128, no activation, dropout 0.5) is the original's head.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = (128,),
        activation: str | None = None,
        dropout: float = 0.5,
    ) -> None:
        act = ACTIVATIONS[
            check_choice("model.net.head.activation", activation or "none", list(ACTIVATIONS))
        ]
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), act(), nn.Dropout(dropout)]
            width = size
        if not hidden:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
