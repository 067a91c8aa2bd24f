"""The original project's baseline CNN, re-built in PyTorch."""

from __future__ import annotations

import torch
from torch import nn

from src.data.transforms import UNIT_RANGE


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class BaselineCNN(nn.Module):
    """4 x (Conv3x3, BatchNorm, ReLU, MaxPool), GAP, Dense 128, BN, ReLU, Dropout, Dense.

    With 202 classes it has 449,802 parameters counting BatchNorm statistics, as the
    Keras original reports. ``kernel_l2`` is the original's L2 penalty on conv kernels,
    added to the loss through :meth:`regularization`.
    """

    data_config = dict(UNIT_RANGE)

    def __init__(
        self,
        num_classes: int,
        channels: tuple[int, ...] = (32, 64, 128, 256),
        hidden: int = 128,
        dropout: float = 0.5,
        kernel_l2: float = 1e-3,
    ) -> None:
        super().__init__()
        widths = (3, *channels)
        self.features = nn.Sequential(*(conv_block(a, b) for a, b in zip(widths, widths[1:])))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels[-1], hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self.kernel_l2 = kernel_l2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def regularization(self) -> torch.Tensor:
        kernels = [m.weight for m in self.features.modules() if isinstance(m, nn.Conv2d)]
        return self.kernel_l2 * sum(k.pow(2).sum() for k in kernels)
