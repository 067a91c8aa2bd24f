"""The classes in the tree of life: their groups at the ranks above the target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from src.data.schema import RANKS, with_target


def higher_ranks(index: pd.DataFrame, target: str) -> list[str]:
    """The ranks above ``target`` that ``index`` has as columns, nearest first."""
    above = RANKS[: RANKS.index(target)]
    return [rank for rank in reversed(above) if rank in index.columns]


def class_groups(
    index: pd.DataFrame, target: str, class_names: Sequence[str], rank: str
) -> np.ndarray:
    """The group at ``rank`` of every class (its most common value in ``index``), as text."""
    frame = with_target(index, target)
    pairs = pd.DataFrame({"c": frame[target].astype(str), "g": frame[rank].astype(str)})
    counts = pairs.value_counts().reset_index()
    counts = counts.sort_values(["count", "g"], ascending=[False, True], kind="stable")
    group_of = counts.drop_duplicates("c").set_index("c")["g"]
    missing = [name for name in class_names if name not in group_of.index]
    if missing:
        raise ValueError(f"classes not in the index: {', '.join(map(str, missing[:3]))}")
    return group_of.loc[list(class_names)].to_numpy(dtype=str)


def class_taxonomy(
    index: pd.DataFrame, target: str, class_names: Sequence[str]
) -> dict[str, list[str]]:
    """Each rank above ``target`` at which the classes fall in more than one group, nearest
    first -> the group of every class (what answers at a higher rank are given in)."""
    taxonomy = {}
    for rank in higher_ranks(index, target):
        groups = class_groups(index, target, class_names, rank)
        if len(set(groups)) > 1:
            taxonomy[rank] = groups.tolist()
    return taxonomy


def class_taxa(
    class_names: Sequence[str], taxonomy: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, str]]:
    """``taxonomy`` (rank -> the group of each class) as rank -> {class: its group}."""
    return {rank: dict(zip(class_names, groups)) for rank, groups in taxonomy.items()}
