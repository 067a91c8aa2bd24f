"""Augmentation bank: a frozen backbone's embeddings of V RandAugment views per training image.

The original's headline setting trains a head on a frozen backbone with RandAugment
oversampling, so every epoch pushes ~48k augmented images through a network whose output
for a given augmented image never changes. The bank computes the embedding of the plain
image and of ``views`` augmented views of every image that oversampling copies, once; each
epoch's sampler (:class:`~src.data.sampling.OversampleSampler`, unchanged) then picks its
copies from the bank instead of augmenting afresh. What is traded: a copy is one of V fixed
views of its image, not a new RandAugment draw.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from src.data.sampling import Draw


def view_seeds(seed: int, items: int, views: int) -> np.ndarray:
    """``(views, items)`` augmentation seeds: view ``v`` of item ``i`` is augmented with
    ``seeds[v, i]``, from the data seed alone (so a resumed run rebuilds the same bank)."""
    return np.random.default_rng([seed, 0xBA4C]).integers(1, 2**62, size=(views, items))


def view_draws(items: np.ndarray, seeds: np.ndarray, size: int) -> list[Draw]:
    """The dataset indices of every view, view-major: ``Draw(i + size, seeds[v, i])``.

    Read through the image dataset, each is exactly the augmented copy the image path
    makes for a draw with that seed.
    """
    return [Draw(int(i) + size, int(seeds[v, i])) for v in range(len(seeds)) for i in items]


def view_of(draw: int, views: int) -> int:
    """Which of the ``views`` banked views stands in for a sampler's copy: its seed decides,
    so each view is equally likely and a resumed epoch picks the same ones."""
    seed = getattr(draw, "seed", None)
    if seed is None:
        raise ValueError(f"Index {int(draw)} is a copy without an augmentation seed.")
    return int(seed) % views


class BankDataset(Dataset):
    """Serves a training epoch from the bank, in the image dataset's index space.

    Index ``i < len(self)`` is the plain embedding of item ``i``; ``i + len(self)`` (a
    :class:`Draw`) is one of its banked views.

    Args:
        plain: ``(N, D)`` embeddings of the un-augmented training images.
        views: ``(V, M, D)`` embeddings of the views of the ``M`` banked items.
        items: the ``M`` banked items (indices into ``plain``), in ``views``' order.
        labels: the ``N`` labels.
    """

    def __init__(
        self, plain: torch.Tensor, views: torch.Tensor, items: np.ndarray, labels: torch.Tensor
    ):
        if len(plain) != len(labels) or views.shape[1] != len(items):
            raise ValueError("The bank's plain embeddings, views and labels do not match.")
        self.plain, self.views, self.labels = plain, views, labels
        self.row = np.full(len(plain), -1, dtype=np.int64)
        self.row[items] = np.arange(len(items))

    def __len__(self) -> int:
        return len(self.plain)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = int(index) % len(self)
        if index < len(self):
            return self.plain[item], self.labels[item]
        row = self.row[item]
        if row < 0:
            raise IndexError(f"Item {item} has no banked views (its class is not oversampled).")
        return self.views[view_of(index, len(self.views)), row], self.labels[item]

    @property
    def nbytes(self) -> int:
        return self.plain.nbytes + self.views.nbytes
