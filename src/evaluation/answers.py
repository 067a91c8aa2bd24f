"""Answers at the rank the evidence supports, and how good they are.

An image's prediction set (:mod:`src.evaluation.calibration`) decides its answer:

- one class: that class, at the target rank;
- several classes that share a group at a higher rank (the nearest such rank first: the
  order before the phylum): that group at that rank ("cnidaria", rank phylum: the family is
  uncertain);
- classes of several phyla, or no class at all, or an image flagged out of scope:
  ``unknown``.

``taxonomy`` maps each rank above the target, nearest first, to the group of every class
(:func:`src.data.taxonomy.class_taxonomy`); ranks where all classes share a group are
left out, so a set spanning phyla is ``unknown``, not "animalia".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from src.evaluation.calibration import Calibration, expected_calibration_error, softmax

UNKNOWN = "unknown"
SET_SEPARATOR = "; "


def answer_of(
    members: Sequence[int],
    class_names: Sequence[str],
    taxonomy: Mapping[str, Sequence[str]],
    target: str,
) -> tuple[str, str]:
    """(answer, rank) for a prediction set given as class indices; rank "" for unknown."""
    if len(members) == 1:
        return str(class_names[members[0]]), target
    if len(members) == 0:
        return UNKNOWN, ""
    for rank, groups in taxonomy.items():
        found = {groups[m] for m in members}
        if len(found) == 1:
            return str(found.pop()), rank
    return UNKNOWN, ""


def answers(
    probabilities: np.ndarray,
    sets: np.ndarray,
    class_names: Sequence[str],
    taxonomy: Mapping[str, Sequence[str]],
    target: str,
    out_of_scope: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per image: ``answer``, ``answer_rank``, ``set`` (its classes, most probable first,
    joined by "; ") and ``set_size``."""
    rows = []
    flags = np.zeros(len(sets), bool) if out_of_scope is None else np.asarray(out_of_scope)
    for p, members, flagged in zip(probabilities, sets, flags):
        order = [int(i) for i in np.argsort(-p, kind="stable") if members[i]]
        answer, rank = (UNKNOWN, "") if flagged else answer_of(order, class_names, taxonomy, target)
        rows.append(
            {
                "answer": answer,
                "answer_rank": rank,
                "set": SET_SEPARATOR.join(str(class_names[i]) for i in order),
                "set_size": len(order),
            }
        )
    return pd.DataFrame(rows, columns=["answer", "answer_rank", "set", "set_size"])


def answer_is_right(
    table: pd.DataFrame,
    labels: np.ndarray,
    class_names: Sequence[str],
    taxonomy: Mapping[str, Sequence[str]],
    target: str,
) -> np.ndarray:
    """Whether each answer other than ``unknown`` names the true class or its group."""
    right = np.zeros(len(table), bool)
    for i, (answer, rank, label) in enumerate(zip(table["answer"], table["answer_rank"], labels)):
        if rank == target:
            right[i] = answer == str(class_names[label])
        elif rank:
            right[i] = answer == str(taxonomy[rank][label])
    return right


def trust_metric_names(target: str) -> tuple[str, ...]:
    """The names :func:`trust_metrics` writes (after ``<prefix>/``) for ``target``."""
    return (
        "ece_uncalibrated",
        "ece",
        "temperature",
        "set_coverage",
        "set_size",
        f"answered_{target}",
        "answered_higher",
        "answered_unknown",
        "answer_acc",
    )


def trust_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    calibration: Calibration,
    class_names: Sequence[str],
    taxonomy: Mapping[str, Sequence[str]],
    target: str,
    prefix: str = "test",
) -> dict[str, float]:
    """How far the test set can trust the answers, keys ``<prefix>/<name>``:

    ``ece_uncalibrated`` and ``ece`` (15 bins, before and after the temperature),
    ``temperature``; ``set_coverage`` (share of sets holding the true class) and
    ``set_size`` (mean classes per set) at the calibration's ``alpha``;
    ``answered_<target>`` and ``answered_higher`` and ``answered_unknown`` (shares of
    images answered at the target rank, at a higher rank, not at all) and ``answer_acc``
    (of the answers given, the share that name the true class or its group). The
    out-of-scope cut plays no part here: the test images are in scope by construction.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = calibration.probabilities(logits)
    sets = calibration.prediction_sets(probabilities)
    table = answers(probabilities, sets, class_names, taxonomy, target)
    given = (table["answer"] != UNKNOWN).to_numpy()
    right = answer_is_right(table, labels, class_names, taxonomy, target)
    rank = table["answer_rank"].to_numpy()

    def share(mask: np.ndarray) -> float:
        return float(mask.mean()) if len(mask) else float("nan")

    def key(name: str) -> str:
        return f"{prefix}/{name}"

    return {
        key("ece_uncalibrated"): expected_calibration_error(softmax(logits), labels),
        key("ece"): expected_calibration_error(probabilities, labels),
        key("temperature"): float(calibration.temperature),
        key("set_coverage"): share(sets[np.arange(len(labels)), labels]),
        key("set_size"): share(sets.sum(1)),
        key(f"answered_{target}"): share(rank == target),
        key("answered_higher"): share(given & (rank != target)),
        key("answered_unknown"): share(~given),
        key("answer_acc"): float(right[given].mean()) if given.any() else float("nan"),
    }
