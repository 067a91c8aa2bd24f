"""Which rows are trained and tested on: pure functions of the split and the filter."""

import pandas as pd
import pytest

from src.data.schema import DataFormatError
from src.data.selection import (
    all_rows,
    check_kept,
    classes_without_training_rows,
    named_row_sets,
    without_files,
)


def frame(*paths: str) -> pd.DataFrame:
    return pd.DataFrame({"file_path": list(paths), "family": [p[0] for p in paths]})


SPLITS = {
    "train": frame("a1", "a2", "b1", "c1"),
    "val": frame("a3", "b2"),
    "test": frame("a4", "b3", "c2"),
}


def paths(rows: pd.DataFrame) -> list[str]:
    return rows["file_path"].tolist()


def test_without_a_filter_the_split_is_the_selection():
    named = named_row_sets(SPLITS)
    assert list(named) == ["train", "val", "test"]
    assert all(paths(named[k]) == paths(SPLITS[k]) for k in named)


def test_filtered_eval_keeps_the_unfiltered_test_set_as_test_full():
    named = named_row_sets(SPLITS, kept=["a1", "b1", "a3", "a4", "c2"])
    assert paths(named["train"]) == ["a1", "b1"]
    assert paths(named["val"]) == ["a3"]
    assert paths(named["test"]) == ["a4", "c2"]
    assert paths(named["test_full"]) == ["a4", "b3", "c2"]
    assert classes_without_training_rows(SPLITS, named, "family") == ["c"]


def test_unfiltered_eval_filters_training_only():
    named = named_row_sets(SPLITS, kept=["a1", "b1"], filter_eval=False)
    assert list(named) == ["train", "val", "test"]
    assert paths(named["train"]) == ["a1", "b1"]
    assert paths(named["val"]) == paths(SPLITS["val"])
    assert paths(named["test"]) == paths(SPLITS["test"])


def test_unusable_files_leave_every_set_and_each_row_is_scanned_once():
    named = named_row_sets(SPLITS, kept=["a1", "a4", "b3"])
    everything = all_rows(named)
    assert sorted(paths(everything)) == ["a1", "a4", "b3", "c2"]  # test_full overlaps test
    assert dict(zip(everything["file_path"], everything["split"]))["a4"] == "test"
    clean = without_files(named, ["a4"])
    assert paths(clean["test"]) == ["b3"] and paths(clean["test_full"]) == ["b3", "c2"]


def test_a_kept_file_outside_the_index_is_refused_with_the_fix():
    with pytest.raises(DataFormatError, match=r"keep.csv lists 1 image.*zz.*src.filter again"):
        check_kept(["a1", "zz"], SPLITS["train"], "keep.csv", "metadata.csv")
