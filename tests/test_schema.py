"""read_index: a damaged or unsafe metadata.csv ends in one sentence naming the problem."""

from pathlib import Path

import pandas as pd
import pytest

from src.data.schema import (
    COLUMNS,
    DataFormatError,
    available_ranks,
    check_target,
    class_names,
    phylum_of,
    read_index,
    read_reference_index,
    species_names,
    with_target,
)
from src.errors import ConfigError
from tests.helpers import run_module


def write_index(root: Path, rows: pd.DataFrame) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows[list(COLUMNS)].to_csv(root / "metadata.csv", index=False)
    return root / "metadata.csv"


@pytest.fixture
def rows() -> pd.DataFrame:
    return read_reference_index().head(8).copy()


def one_sentence(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message.endswith(".")
    return message


def test_the_shipped_index_is_accepted():
    assert len(read_reference_index()) == 11_983


@pytest.mark.parametrize("column", ["rare_species_id", "file_path"])
def test_duplicate_rows_are_refused_with_examples(tmp_path, rows, column):
    repeated = pd.concat([rows, rows.iloc[[1, 2, 2]]])
    if column == "file_path":  # same image under new ids
        repeated["rare_species_id"] = [f"id{i}" for i in range(len(repeated))]
    with pytest.raises(DataFormatError) as err:
        read_index(write_index(tmp_path, repeated))
    message = one_sentence(err)
    assert f"3 duplicate row(s) by {column}" in message
    assert str(rows[column].iloc[1]) in message and "keep one row per image" in message


@pytest.mark.parametrize("bad", ["../outside.jpg", "a/../../b.jpg", "/etc/passwd", "C:\\x.jpg"])
def test_paths_outside_the_image_root_are_refused(tmp_path, rows, bad):
    rows.loc[rows.index[3], "file_path"] = bad
    with pytest.raises(DataFormatError) as err:
        read_index(write_index(tmp_path, rows))
    message = one_sentence(err)
    assert "outside the image root" in message and bad in message


def test_empty_file_is_explained(tmp_path):
    tmp_path.joinpath("metadata.csv").write_bytes(b"")
    with pytest.raises(DataFormatError) as err:
        read_index(tmp_path / "metadata.csv")
    assert "is empty" in one_sentence(err)


def test_header_only_is_explained(tmp_path, rows):
    with pytest.raises(DataFormatError) as err:
        read_index(write_index(tmp_path, rows.head(0)))
    assert "has a header but no rows" in one_sentence(err)


def test_non_utf8_is_explained(tmp_path, rows):
    path = write_index(tmp_path, rows)
    family = rows["family"].iloc[0]
    path.write_bytes(path.read_bytes().replace(family.encode(), "bébé".encode("latin-1"), 1))
    with pytest.raises(DataFormatError) as err:
        read_index(path)
    assert "is not UTF-8" in one_sentence(err) and "save it as UTF-8" in str(err.value)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "is empty"),
        (",".join(COLUMNS).encode() + b"\n", "has a header but no rows"),
        (None, "is not UTF-8"),
    ],
)
def test_train_explains_an_unreadable_index_in_one_line(tmp_path, rows, content, problem):
    path = write_index(tmp_path / "root", rows)
    if content is None:  # a family name saved as latin-1
        family = rows["family"].iloc[0]
        content = path.read_bytes().replace(family.encode(), "bébé".encode("latin-1"), 1)
    path.write_bytes(content)
    result = run_module(
        tmp_path,
        "src.train",
        "data=rarespecies",
        f"data.root={tmp_path / 'root'}",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert problem in result.stderr and "metadata.csv" in result.stderr


# ---- ranks and targets ------------------------------------------------------------------
def test_the_shipped_index_has_four_ranks_and_400_species():
    index = read_reference_index()
    assert available_ranks(index) == ("kingdom", "phylum", "family", "species")
    assert len(class_names(index, "species")) == 400
    assert class_names(index, "kingdom") == ["animalia"]


def test_species_falls_back_to_eol_page_id_as_text():
    index = read_reference_index()
    targeted = with_target(index, "species")
    assert "species" not in index.columns  # the caller's frame is left alone
    assert list(targeted["species"]) == list(index["eol_page_id"].astype(str))
    assert with_target(index, "family") is index  # nothing to add: the same frame


def test_a_species_column_is_used_when_the_index_has_one(rows):
    named = rows.assign(species=rows["family"] + " epithet")
    assert with_target(named, "species") is named
    assert class_names(named, "species") == sorted(set(rows["family"] + " epithet"))


@pytest.mark.parametrize("rank", ["genus", "order", "class"])
def test_a_rank_the_index_lacks_is_one_sentence_naming_the_ranks_it_has(rows, rank):
    with pytest.raises(ConfigError) as err:
        with_target(rows, rank)
    message = one_sentence(err)
    assert f"data.target={rank!r} is not a column of this index" in message
    assert "kingdom, phylum, family, species" in message and "src.data.download" in message


def test_a_target_that_is_no_rank_is_refused_as_any_choice():
    with pytest.raises(ConfigError, match=r"data.target='colour' is not one of kingdom, phylum"):
        check_target("colour")


def test_a_name_shared_by_two_families_cannot_be_a_class(rows):
    epithets = rows.assign(species="africanus")  # an epithet without its genus
    assert rows["family"].nunique() > 1
    with pytest.raises(DataFormatError) as err:
        with_target(epithets, "species")
    assert "1 species name(s) lie in more than one family (e.g. africanus)" in one_sentence(err)


def test_an_empty_target_field_is_named(rows):
    holes = rows.assign(genus=["g"] * (len(rows) - 1) + [None])
    with pytest.raises(DataFormatError) as err:
        with_target(holes, "genus")
    assert f"1 empty field(s) (first at row {len(rows) + 1})" in one_sentence(err)


def test_phylum_of_every_class_of_the_target():
    index = read_reference_index()
    families = phylum_of(index)
    assert phylum_of(index, "family") == families and len(families) == 202
    species = phylum_of(index, "species")
    assert len(species) == 400
    for page, family in zip(index["eol_page_id"].astype(str), index["family"]):
        assert species[page] == families[family]
    assert phylum_of(index, "phylum") == phylum_of(index, "kingdom") == {}


def test_species_names_are_readable_when_the_index_has_them(rows):
    named = rows.assign(
        species=[f"genus{i} epithet" for i in range(len(rows))],
        sciName=[f"Genus{i} epithet" for i in range(len(rows))],
        common=[f"animal {i}" if i else "" for i in range(len(rows))],
    )
    names = species_names(named, "species")
    assert names["genus1 epithet"] == "Genus1 epithet (animal 1)"
    assert names["genus0 epithet"] == "Genus0 epithet"  # no common name
    assert species_names(named, "family") == {} and species_names(rows, "species") == {}
