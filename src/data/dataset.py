"""A map-style dataset over rows of the rare-species index."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from src.data.cache import DecodedCache
from src.data.images import DEFAULT_MAX_PIXELS, load_rgb
from src.data.transforms import ImagePipeline


class RareSpeciesDataset(Dataset):
    """Yields ``(image, label)``; index ``i + len(self)`` is an augmented copy of item ``i``.

    The second half of the index space is what :class:`~src.data.sampling.OversampleSampler`
    draws from, each copy with its own augmentation seed; plain samplers only ever ask for
    ``0 .. len(self) - 1``.
    """

    def __init__(
        self,
        root: str | Path,
        rows: pd.DataFrame,
        labels: list[int],
        pipeline: ImagePipeline,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        on_non_rgb: str = "convert",
        fast_decode: bool = True,
        cache: DecodedCache | None = None,
        defer: bool = False,
    ) -> None:
        if len(rows) != len(labels):
            raise ValueError(f"{len(rows)} rows but {len(labels)} labels.")
        self.root = Path(root)
        self.file_paths = rows["file_path"].tolist()
        self.labels = list(labels)
        self.pipeline = pipeline
        self.max_pixels = max_pixels
        self.on_non_rgb = on_non_rgb
        self.draft_size = pipeline.image_size if fast_decode else None
        self.cache = cache
        self.defer = defer

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int):
        """The decoded ``(H, W, 3)`` uint8 array of item ``index`` (resized if from the cache)."""
        if self.cache is not None:
            return self.cache[self.file_paths[index]]
        return load_rgb(
            self.root / self.file_paths[index],
            max_pixels=self.max_pixels,
            draft_size=self.draft_size,
            on_non_rgb=self.on_non_rgb,
        )

    def __getitem__(self, index: int):
        """``(image, label)``; with ``defer`` ``(uint8 image, label, augment)``, where
        ``augment`` is 0 for an original and the copy's (odd, so non-zero) seed otherwise."""
        item, augmented = index % len(self), index >= len(self)
        seed = augmentation_seed(index) if augmented else 0
        if self.defer:  # augmentation and normalisation happen on the batch's device
            return self.pipeline.to_uint8(self.load(item)), self.labels[item], seed | augmented
        if not augmented:
            return self.pipeline(self.load(item)), self.labels[item]
        with torch.random.fork_rng(devices=[]):  # the copy's own draw, whatever process runs it
            torch.manual_seed(seed)
            return self.pipeline(self.load(item), augment=True), self.labels[item]


def augmentation_seed(index: int) -> int:
    """The seed a sampler gave this augmented copy (:class:`~src.data.sampling.Draw`).

    A plain index (no sampler seed) takes one from the process's generator, as before.
    """
    seed = getattr(index, "seed", None)
    return int(seed) if seed is not None else int(torch.randint(2**62, ()))
