"""Head training from cached backbone features against the full forward pass."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from src.benchmarks.measure import timed
from src.benchmarks.model import make_model


def bench_features(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = args.device
    torch.manual_seed(0)
    model = make_model(args.backbone, 202, "all").to(device)
    images = torch.randn(args.images, 3, args.image_size, args.image_size)
    labels = torch.randint(0, 202, (args.images,))
    loader = DataLoader(TensorDataset(images, labels), batch_size=args.batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.net.head.parameters(), lr=1e-3)

    def epoch(forward: Callable[[torch.Tensor], torch.Tensor], data: DataLoader) -> int:
        model.train()
        for x, y in data:
            loss = torch.nn.functional.cross_entropy(forward(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return len(data.dataset)

    full = timed(lambda: epoch(model, loader))
    with torch.no_grad():
        model.eval()
        features = torch.cat(
            [model.net.forward_features(x.to(device)).cpu() for x in images.split(args.batch_size)]
        )
    feature_loader = DataLoader(
        TensorDataset(features, labels), batch_size=args.batch_size, shuffle=True
    )
    head = timed(lambda: epoch(model.net.head, feature_loader), repeat=3)
    return [
        {
            "bench": "features",
            "backbone": args.backbone,
            "images": args.images,
            "image_size": args.image_size,
            "full_forward_epoch_s": round(args.images / full, 3),
            "cached_features_epoch_s": round(args.images / head, 4),
            "speedup": round(head / full, 1),
        }
    ]
