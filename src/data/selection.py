"""Which images a run trains, validates and tests on, read top to bottom.

    split of the full index (train / val / test)
    -> kept rows of the "only animals" filter (train always; val/test with filter_eval,
       and then the unfiltered test split stays as ``test_full``, so both numbers exist)
    -> images that cannot be used taken out of every set

Pure functions of data frames: the reading and scanning happen in the data module's
``setup``. Filtering the split of the full index (not splitting the filtered index) means no
image ever changes split and the class indices stay those of the full data set.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pandas as pd

from src.data.schema import DataFormatError

TEST_SETS: tuple[str, ...] = ("test", "test_full")


def check_kept(kept: Collection[str], index: pd.DataFrame, kept_from: str, index_from: str) -> None:
    """Every kept file must be a row of the index it filters."""
    unknown = set(kept) - set(index["file_path"])
    if unknown:
        raise DataFormatError(
            f"{kept_from} lists {len(unknown)} image(s) that are not in {index_from} "
            f"(e.g. {sorted(unknown)[0]}); run python -m src.filter again for this data set."
        )


def named_row_sets(
    splits: Mapping[str, pd.DataFrame],
    kept: Collection[str] | None = None,
    filter_eval: bool = True,
) -> dict[str, pd.DataFrame]:
    """``train``, ``val``, ``test`` and, when val/test are filtered, ``test_full``."""
    if kept is None:
        return dict(splits)
    keep = set(kept)
    filtered = {name: rows[rows["file_path"].isin(keep)] for name, rows in splits.items()}
    if not filter_eval:
        return {**filtered, "val": splits["val"], "test": splits["test"]}
    return {**filtered, "test_full": splits["test"]}


def classes_without_training_rows(
    splits: Mapping[str, pd.DataFrame], row_sets: Mapping[str, pd.DataFrame], target: str
) -> list[str]:
    """Classes the split trains on that the selection left with no training image."""
    return sorted(set(splits["train"][target]) - set(row_sets["train"][target]))


def without_files(
    row_sets: Mapping[str, pd.DataFrame], file_paths: Collection[str]
) -> dict[str, pd.DataFrame]:
    """Every set with the rows of ``file_paths`` taken out."""
    drop = set(file_paths)
    return {name: rows[~rows["file_path"].isin(drop)] for name, rows in row_sets.items()}


def all_rows(row_sets: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every row of every set once, with the name of the first set holding it in ``split``."""
    parts = [rows.assign(split=name) for name, rows in row_sets.items()]
    return pd.concat(parts).drop_duplicates("file_path")
