"""The baseline CNN (src/models/baseline.py): the original network's size."""

import torch

from src.models.baseline import BaselineCNN


def test_baseline_matches_the_original_parameter_count():
    net = BaselineCNN(num_classes=202)
    params = sum(p.numel() for p in net.parameters())
    statistics = sum(b.numel() for name, b in net.named_buffers() if "running" in name)
    assert params + statistics == 449_802
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 202)
