"""What a training epoch sees, in which order: seeded per-epoch samplers (a plain shuffle,
and RandAugment oversampling for imbalance) and "balanced" class weights."""

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


class Draw(int):
    """The index ``item + n`` of an augmented copy, carrying the seed of its augmentation.

    An ``int``, so samplers, DDP wrappers and the dataset's "second half of the index
    space" contract work unchanged; the seed makes the copy's RandAugment depend on the
    draw alone, never on a loader worker's random state (which a resumed run cannot
    restore).
    """

    seed: int

    def __new__(cls, value: int, seed: int) -> Draw:
        draw = super().__new__(cls, value)
        draw.seed = seed
        return draw

    def __reduce__(self):
        return Draw, (int(self), self.seed)


class EpochSampler(Sampler[int]):
    """An epoch's order drawn from ``(seed, epoch)`` alone, so a resumed run replays it.

    Lightning passes the epoch to :meth:`set_epoch`; :meth:`resume` skips the first
    ``done`` entries of one epoch (a run resumed from a checkpoint saved mid-epoch).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, done: int) -> None:
        self._resume = (epoch, done) if done > 0 else None

    def plan(self) -> np.ndarray:
        raise NotImplementedError

    def draws(self) -> list[int]:
        return self.plan().tolist()

    def __iter__(self) -> Iterator[int]:
        draws = self.draws()
        if self._resume is not None and self._resume[0] == self.epoch:
            draws = draws[self._resume[1] :]
        return iter(draws)


class ShuffleSampler(EpochSampler):
    """Every item once per epoch, in an order that depends on ``(seed, epoch)`` only."""

    def __init__(self, size: int, seed: int = 0) -> None:
        super().__init__(seed)
        self.size = size

    def __len__(self) -> int:
        return self.size

    def plan(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)


class OversampleSampler(EpochSampler):
    """Every epoch: each original once, plus RandAugment copies topping each class up.

    Indices below ``len(labels)`` are originals; ``i + len(labels)`` asks the dataset for an
    augmented copy of item ``i`` (a :class:`Draw` with its own augmentation seed). Copies
    are drawn afresh each epoch from ``seed`` and the epoch, so no augmented files are
    stored and a resumed run draws the same copies with the same augmentations.
    """

    def __init__(self, labels: Sequence[int], seed: int = 0, target_count: int | None = None):
        super().__init__(seed)
        self.labels = np.asarray(labels, dtype=np.int64)
        self._members = [np.flatnonzero(self.labels == c) for c in np.unique(self.labels)]
        largest = max((len(m) for m in self._members), default=0)
        self.target_count = max(largest, target_count or 0)

    def __len__(self) -> int:
        return self.target_count * len(self._members)

    def _topped_up(self) -> list[np.ndarray]:
        return [m for m in self._members if len(m) < self.target_count]

    def copied_items(self) -> np.ndarray:
        """The items any epoch may copy: those of the classes below ``target_count``."""
        topped_up = self._topped_up()
        return np.sort(np.concatenate(topped_up)) if topped_up else np.empty(0, np.int64)

    def plan(self) -> np.ndarray:
        """This epoch's indices, shuffled: originals then copies, as described above."""
        rng = np.random.default_rng([self.seed, self.epoch])
        copies = [
            rng.choice(members, size=self.target_count - len(members), replace=True)
            for members in self._topped_up()
        ]
        extra = np.concatenate(copies) + len(self.labels) if copies else np.empty(0, np.int64)
        everything = np.concatenate([np.arange(len(self.labels)), extra])
        return rng.permutation(everything)

    def draws(self) -> list[int]:
        plan = self.plan()
        seeds = np.random.default_rng([self.seed, self.epoch, 1]).integers(2**62, size=len(plan))
        n = len(self.labels)
        return [Draw(int(i), int(s)) if i >= n else int(i) for i, s in zip(plan, seeds)]
