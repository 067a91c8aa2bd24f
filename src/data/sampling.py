"""Imbalance handling: RandAugment oversampling and "balanced" class weights."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from src.errors import check_choice

IMBALANCE_MODES = ("none", "oversample", "class_weights", "both")


def check_imbalance(mode: str) -> str:
    return check_choice("data.imbalance", mode, IMBALANCE_MODES)


def balanced_class_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """``n / (k * n_c)`` as scikit-learn's "balanced"; a class absent from training gets 0.

    ``k`` counts only the classes present, so the weights average to 1 over the samples.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


class OversampleSampler(Sampler[int]):
    """Every epoch: each original once, plus RandAugment copies topping each class up.

    Indices below ``len(labels)`` are originals; ``i + len(labels)`` asks the dataset for an
    augmented copy of item ``i``. Copies are drawn afresh each epoch (from ``seed`` and
    the epoch Lightning passes to :meth:`set_epoch`), so no augmented files are stored.
    """

    def __init__(self, labels: Sequence[int], seed: int = 0, target_count: int | None = None):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seed = seed
        self.epoch = 0
        self._members = [np.flatnonzero(self.labels == c) for c in np.unique(self.labels)]
        largest = max((len(m) for m in self._members), default=0)
        self.target_count = max(largest, target_count or 0)

    def __len__(self) -> int:
        return self.target_count * len(self._members)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def plan(self) -> np.ndarray:
        """This epoch's indices, shuffled: originals then copies, as described above."""
        rng = np.random.default_rng([self.seed, self.epoch])
        copies = [
            rng.choice(members, size=self.target_count - len(members), replace=True)
            for members in self._members
            if len(members) < self.target_count
        ]
        extra = np.concatenate(copies) + len(self.labels) if copies else np.empty(0, np.int64)
        everything = np.concatenate([np.arange(len(self.labels)), extra])
        return rng.permutation(everything)

    def __iter__(self) -> Iterator[int]:
        return iter(self.plan().tolist())
