import pandas as pd
import pytest

from src.data.schema import read_reference_index
from src.data.split import (
    TEST_FRACTION,
    VAL_FRACTION,
    SplitError,
    load_or_make_split,
    main,
    min_class_size,
    read_split,
    stratified_split,
    write_split,
)
from src.errors import ConfigError


@pytest.fixture(scope="module")
def index() -> pd.DataFrame:
    return read_reference_index()


@pytest.fixture(scope="module")
def splits(index):
    return stratified_split(index)


def test_shipped_index_is_the_real_one(index):
    assert len(index) == 11_983
    assert index["family"].nunique() == 202
    assert index["phylum"].value_counts().to_dict() == {
        "chordata": 9_952,
        "arthropoda": 951,
        "cnidaria": 810,
        "mollusca": 210,
        "echinodermata": 60,
    }


def test_split_reproduces_the_original_counts(splits):
    assert [len(splits[s]) for s in ("train", "val", "test")] == [9_586, 1_198, 1_199]


def test_split_is_stratified_per_family(index, splits):
    train = splits["train"]["family"].value_counts()
    val = splits["val"]["family"].value_counts()
    test = splits["test"]["family"].value_counts()
    assert (train.min(), train.max()) == (23, 240)
    assert (val.min(), val.max()) == (3, 30)
    assert (test.min(), test.max()) == (3, 30)
    total = index["family"].value_counts()
    share = (train / total).reindex(total.index)
    assert share.between(0.75, 0.85).all()
    assert set(val.index) == set(test.index) == set(total.index)


def test_split_is_a_partition_and_deterministic(index, splits):
    ids = [set(splits[s].index) for s in ("train", "val", "test")]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert set().union(*ids) == set(index.index)
    again = stratified_split(index)
    for name in ("train", "val", "test"):
        assert list(again[name].index) == list(splits[name].index)
    other_seed = stratified_split(index, seed=7)
    assert list(other_seed["test"].index) != list(splits["test"].index)


def test_phylum_target_stratifies_on_phylum(index):
    parts = stratified_split(index, target="phylum")
    assert parts["val"]["phylum"].value_counts()["echinodermata"] == 6


def test_saved_split_is_reused_and_checked(index, splits, tmp_path):
    write_split(splits, tmp_path)
    again = load_or_make_split(index, tmp_path, seed=123)  # another seed: the saved split wins
    for name in ("train", "val", "test"):
        assert list(again[name]["file_path"]) == list(splits[name]["file_path"])
        assert list(again[name].index) == list(splits[name].index)
    leaked = pd.concat([splits["train"], splits["test"].head(1)])
    leaked.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(SplitError, match="more than one split"):
        read_split(tmp_path, index)


def test_too_small_class_is_named(index):
    small = pd.concat(
        [index[index["family"] != "siluridae"], index[index["family"] == "siluridae"].head(4)]
    )
    with pytest.raises(SplitError, match=r"siluridae \(4\)"):
        stratified_split(small)


def test_cli_writes_three_csvs(tmp_path, capsys):
    from src.data.schema import reference_index_path

    main([str(reference_index_path()), "--out", str(tmp_path)])
    counts = [len(pd.read_csv(tmp_path / f"{s}.csv")) for s in ("train", "val", "test")]
    assert counts == [9_586, 1_198, 1_199]
    assert "train 9,586" in capsys.readouterr().out


def test_species_split_is_stratified_per_species_and_a_partition(index):
    """400 species of 21-30 images (eol_page_id: the shipped index has no species column)."""
    parts = stratified_split(index, target="species")
    counts = {s: parts[s]["species"].value_counts() for s in ("train", "val", "test")}
    total = index["eol_page_id"].astype(str).value_counts()
    assert (total.min(), total.max(), len(total)) == (21, 30, 400)
    assert min_class_size(VAL_FRACTION, TEST_FRACTION) <= total.min()
    for name, share in (("train", (0.75, 0.85)), ("val", (0.07, 0.12)), ("test", (0.07, 0.12))):
        assert set(counts[name].index) == set(total.index)  # every species in every split
        assert (counts[name] / total).reindex(total.index).between(*share).all(), name
    assert (counts["val"].min(), counts["val"].max()) == (2, 3)
    ids = [set(parts[s]["file_path"]) for s in ("train", "val", "test")]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert set().union(*ids) == set(index["file_path"])
    again = stratified_split(index, target="species")
    assert list(again["test"].index) == list(parts["test"].index)


def test_species_split_uses_a_species_column_when_there_is_one(index):
    named = index.assign(species="sp " + index["eol_page_id"].astype(str))
    parts = stratified_split(named, target="species")
    assert parts["val"]["species"].str.startswith("sp ").all()
    assert parts["val"]["species"].nunique() == 400


def test_a_rank_the_index_lacks_stops_the_split(index):
    with pytest.raises(ConfigError, match=r"'genus' is not a column .* kingdom, phylum, family"):
        stratified_split(index, target="genus")
