"""read_index: a damaged or unsafe metadata.csv ends in one sentence naming the problem."""

from pathlib import Path

import pandas as pd
import pytest

from src.data.schema import COLUMNS, DataFormatError, read_index, read_reference_index
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
