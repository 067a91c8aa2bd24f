"""Few-shot classification as BioCLIP evaluates it: k images per class, nearest centroid.

For each repeat, k training images of every class are drawn (seeded by the seed and the
repeat; for one repeat the k = 1 images are among the k = 5 ones). Embeddings are
L2-normalised; with ``center`` (BioCLIP's and SimpleShot's CL2N) the mean of the drawn
images is subtracted and they are normalised again. A class's centroid is the mean of its
drawn images; an image belongs to the nearest centroid (Euclidean distance). Probabilities,
for the metrics that need scores, are ``softmax(-d^2 / (2 * temperature))``: for unit
vectors and ``center=false`` this is the softmax of cosine similarities scaled by
1/temperature, as CLIP scores text (temperature 0.01).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from src.models.metrics import score_probabilities

log = logging.getLogger(__name__)
TEMPERATURE = 0.01


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def shot_indices(labels: Sequence[int], shots: int, seed: int, repeat: int) -> np.ndarray:
    """Positions in ``labels`` of ``shots`` images per class (all of a class that has fewer),
    drawn by ``(seed, repeat)`` alone; classes in sorted order."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, repeat])
    order = np.argsort(labels, kind="stable")
    _, starts = np.unique(labels[order], return_index=True)
    chosen = [rng.permutation(members)[:shots] for members in np.split(order, starts[1:])]
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


class NearestCentroid:
    """``fit(embeddings, labels)`` on the shots, ``predict_proba``/``predict`` on any images.

    A class with no shot gets probability 0.
    """

    def __init__(self, num_classes: int, center: bool = True, temperature: float = TEMPERATURE):
        self.num_classes, self.center, self.temperature = num_classes, center, temperature

    def _features(self, embeddings: np.ndarray) -> np.ndarray:
        x = l2_normalize(embeddings)
        return l2_normalize(x - self.mean_) if self.center else x

    def fit(self, embeddings: np.ndarray, labels: Sequence[int]) -> NearestCentroid:
        labels = np.asarray(labels)
        x = l2_normalize(embeddings)
        self.mean_ = x.mean(axis=0) if self.center else np.zeros(x.shape[1])
        features = self._features(embeddings)
        sums = np.zeros((self.num_classes, features.shape[1]))
        np.add.at(sums, labels, features)
        counts = np.bincount(labels, minlength=self.num_classes)
        self.present_ = counts > 0
        self.centroids_ = sums / np.maximum(counts, 1)[:, None]
        return self

    def squared_distances(self, embeddings: np.ndarray) -> np.ndarray:
        x = self._features(embeddings)
        c = self.centroids_
        d2 = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :]
        return np.maximum(d2, 0.0)

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        logits = -self.squared_distances(embeddings) / (2 * self.temperature)
        logits[:, ~self.present_] = -np.inf
        return softmax(logits)

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        d2 = self.squared_distances(embeddings)
        d2[:, ~self.present_] = np.inf
        return d2.argmin(1)


def fewshot_repeats(
    train: tuple[np.ndarray, np.ndarray],
    test_sets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    shots: Sequence[int],
    repeats: int,
    seed: int,
    center: bool = True,
    score: Callable[[np.ndarray, np.ndarray, str], dict[str, float]] | None = None,
) -> tuple[list[dict[str, Any]], dict[int, dict[str, np.ndarray]]]:
    """Every (k, repeat): the metrics on each test set (one row each, keys ``<set>/<metric>``),
    and for each k the probabilities of its first repeat (for the per-class report).

    ``score(probabilities, labels, set_name)`` gives the metrics (the baselines pass
    :meth:`~src.evaluation.baselines.Baseline.score`); by default
    :func:`~src.models.metrics.score_probabilities`."""
    if score is None:

        def score(probabilities, labels, name):
            return score_probabilities(probabilities, labels, num_classes, prefix=name)

    embeddings, labels = train
    counts = np.bincount(labels, minlength=num_classes)
    rows: list[dict[str, Any]] = []
    first: dict[int, dict[str, np.ndarray]] = {}
    for k in shots:
        short = int((counts[counts > 0] < k).sum())
        if short:
            log.warning("%d class(es) have fewer than %d training images: all are used.", short, k)
        for repeat in range(repeats):
            chosen = shot_indices(labels, k, seed, repeat)
            model = NearestCentroid(num_classes, center).fit(embeddings[chosen], labels[chosen])
            row: dict[str, Any] = {"shots": k, "repeat": repeat, "seed": seed}
            for name, (x, y) in test_sets.items():
                probabilities = model.predict_proba(x)
                row.update(score(probabilities, y, name))
                if repeat == 0:
                    first.setdefault(k, {})[name] = probabilities
            rows.append(row)
    return rows, first


def mean_and_std(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per metric over the repeats: the mean under its own key, the std as ``<key>_std``
    (population std, as BioCLIP reports it)."""
    keys = [k for k in rows[0] if "/" in k]
    summary: dict[str, float] = {}
    for key in keys:
        values = np.array([row[key] for row in rows], dtype=float)
        summary[key] = float(values.mean())
        summary[f"{key}_std"] = float(values.std())
    return summary
