"""Loaders: the original's PIL decode + resize against the project's JPEG path and cache."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from src.benchmarks.measure import cached_synthetic, timed


class NaiveImages(Dataset):
    """The original's way: full PIL decode and PIL resize of every image, every epoch."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            image = image.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
            return torch.from_numpy(np.asarray(image)).permute(2, 0, 1)


def bench_data(args: argparse.Namespace) -> list[dict[str, Any]]:
    from src.data.datamodule import RareSpeciesDataModule

    # full-size JPEGs, as the real data has
    root = args.root or cached_synthetic("tiny", [800, 1600])
    rows = []
    for workers in (1, 2):
        common = {
            "root": str(root),
            "image_size": args.image_size,
            "num_workers": workers,
            "batch_size": 32,
            "persistent_workers": False,
            "output_dir": tempfile.mkdtemp(),
        }
        jpeg = RareSpeciesDataModule(**common)
        cached = RareSpeciesDataModule(**common, cache=True)
        jpeg.setup("fit")
        cached.setup("fit")
        subset = list(range(min(args.images, len(jpeg.datasets["train"]))))
        paths = [Path(root) / p for p in jpeg.rows["train"]["file_path"].iloc[subset]]
        loaders = {
            "naive (PIL decode + resize)": DataLoader(
                NaiveImages(paths, args.image_size), batch_size=32, num_workers=workers
            ),
            "project JPEG path (draft + OpenCV)": DataLoader(
                torch.utils.data.Subset(jpeg.datasets["train"], subset),
                batch_size=32,
                num_workers=workers,
            ),
            "decoded cache": DataLoader(
                torch.utils.data.Subset(cached.datasets["train"], subset),
                batch_size=32,
                num_workers=workers,
            ),
        }
        speeds = {
            name: timed(
                lambda dl=dl: sum(len(b[0]) if isinstance(b, list) else len(b) for b in dl),
                repeat=2,
            )
            for name, dl in loaders.items()
        }
        for name, speed in speeds.items():
            rows.append(
                {
                    "bench": "data",
                    "loader": name,
                    "workers": workers,
                    "images_per_s": round(speed, 1),
                    "x_naive": round(speed / speeds["naive (PIL decode + resize)"], 2),
                }
            )
    return rows
