"""Taxonomy-aware test metrics: how good the predictions are above the target rank, and how
far from the truth the mistakes land in the tree of life.

For ``(N, C)`` probabilities over the target classes, ``(N,)`` labels, the class names and
the index (the rank columns of :data:`~src.data.schema.RANKS` it has), with keys
``<prefix>/<name>`` (``test/...``, ``test_full/...``):

- ``<rank>_acc`` and ``<rank>_f1_macro`` for every rank above the target that the index has
  and at which the classes fall in more than one group (a constant rank, such as the
  kingdom of an all-animal index, says nothing). An image's probability of a group is the sum
  of the probabilities of the target classes inside it (no extra heads); the predicted group
  is the most probable one. Macro F1 averages over the groups, leaving out a group that is
  neither true nor predicted for any image (as the target-level ``f1_macro`` does).
- ``errors_within_phylum`` (and ``errors_within_order`` when the index has an order column):
  of the target-level mistakes (argmax class != true class), the share whose predicted class
  lies in the true class's phylum (order). Only for such a rank above the target with more
  than one group.
- ``error_distance``: the mean taxonomic distance of the target-level mistakes. Let
  ``r_1, ..., r_m`` be the ranks above the target that the index has, nearest first. The
  distance of a mistake is the smallest ``j`` such that the true and the predicted class lie
  in the same group at ``r_j``, and ``m + 1`` if they share none (they meet only at the root).
  Target family with kingdom and phylum: 1 = same phylum, 2 = another phylum. A correct
  prediction would be 0; only mistakes are averaged.

Keys over mistakes are NaN when there is none. When the classes differ at no rank above the
target (target phylum or kingdom with a single kingdom) there is nothing to measure and
:func:`taxonomy_metrics` returns no keys. A class whose rows disagree on a higher rank
takes its most common group there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from src.data.taxonomy import class_groups, higher_ranks

RANK_METRICS: tuple[str, ...] = ("acc", "f1_macro")  # per rank above the target
WITHIN_RANKS: tuple[str, ...] = ("phylum", "order")  # errors_within_<rank>
ERROR_DISTANCE = "error_distance"


def rank_key(rank: str, metric: str, prefix: str = "test") -> str:
    """``test/phylum_acc``: ``metric`` (of :data:`RANK_METRICS`) at ``rank``."""
    return f"{prefix}/{rank}_{metric}"


def within_key(rank: str, prefix: str = "test") -> str:
    """``test/errors_within_phylum``: the share of mistakes inside the true ``rank``."""
    return f"{prefix}/errors_within_{rank}"


PHYLUM_ACC = rank_key("phylum", "acc")  # the one taxonomy key result tables show


def macro_f1(true: np.ndarray, predicted: np.ndarray, groups: int) -> float:
    """Mean F1 over the groups that are true or predicted for some image."""
    tp = np.bincount(true[true == predicted], minlength=groups)
    fp = np.bincount(predicted, minlength=groups) - tp
    fn = np.bincount(true, minlength=groups) - tp
    denominator = 2 * tp + fp + fn
    seen = denominator > 0
    if not seen.any():
        return float("nan")
    return float(np.mean(2 * tp[seen] / denominator[seen]))


def taxonomy_metrics(
    probabilities,
    labels,
    class_names: Sequence[str],
    index: pd.DataFrame,
    target: str,
    prefix: str = "test",
) -> dict[str, float]:
    """The metrics of the module docstring, keys ``<prefix>/<name>``; floats."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    ranks = higher_ranks(index, target)
    groups = {rank: class_groups(index, target, class_names, rank) for rank in ranks}
    informative = [rank for rank in ranks if len(set(groups[rank])) > 1]
    if not informative:
        return {}
    scores: dict[str, float] = {}
    for rank in informative:
        names, group = np.unique(groups[rank], return_inverse=True)
        summed = probabilities @ np.eye(len(names))[group]  # a group's = sum of its classes'
        true, predicted = group[labels], summed.argmax(1)
        accuracy = float(np.mean(true == predicted)) if len(labels) else float("nan")
        scores[rank_key(rank, "acc", prefix)] = accuracy
        scores[rank_key(rank, "f1_macro", prefix)] = macro_f1(true, predicted, len(names))
    predictions = probabilities.argmax(1)
    wrong = predictions != labels
    truth, guess = labels[wrong], predictions[wrong]

    def share(values: np.ndarray) -> float:
        return float(values.mean()) if len(values) else float("nan")

    for rank in WITHIN_RANKS:
        if rank in informative:
            scores[within_key(rank, prefix)] = share(groups[rank][truth] == groups[rank][guess])
    distance = np.full(len(truth), len(ranks) + 1)
    for j, rank in reversed(list(enumerate(ranks, start=1))):
        distance[groups[rank][truth] == groups[rank][guess]] = j
    scores[f"{prefix}/{ERROR_DISTANCE}"] = share(distance)
    return scores
