"""The on-disk format of the rare-species data set and the checks that guard it.

An image root holds ``metadata.csv`` (one row per image) and the images at
``<root>/<file_path>``, where ``file_path`` is
``<phylum>_<family>/<eol_content_id>_<eol_page_id>_eol-full-size-copy.jpg``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from src.errors import UserFacingError, check_choice

COLUMNS: tuple[str, ...] = (
    "rare_species_id",
    "eol_content_id",
    "eol_page_id",
    "kingdom",
    "phylum",
    "family",
    "file_path",
)
METADATA_FILE = "metadata.csv"
TARGETS: tuple[str, ...] = ("family", "phylum")
FIX_HINT = (
    "run `python -m src.data.download --out DIR` (needs internet) and pass data.root=DIR, "
    "or use data=synthetic"
)


class DataFormatError(UserFacingError, ValueError):
    """The data on disk does not follow the rare-species format."""


def image_file_name(content_id: int, page_id: int) -> str:
    return f"{content_id}_{page_id}_eol-full-size-copy.jpg"


def image_rel_path(phylum: str, family: str, content_id: int, page_id: int) -> str:
    """The ``file_path`` of one image, relative to the image root (always lower case)."""
    return f"{phylum}_{family}/{image_file_name(content_id, page_id)}".lower()


def reference_index_path() -> Path:
    """The real index of the data set (11,983 rows, CC0), shipped inside the package."""
    return Path(str(resources.files("src.data") / "resources" / "rare_species_metadata.csv"))


def read_reference_index() -> pd.DataFrame:
    return read_index(reference_index_path())


def read_index(path: str | Path) -> pd.DataFrame:
    """Read and validate a metadata CSV; errors name the file and say how to fix it."""
    path = Path(path)
    if not path.parent.is_dir():
        raise DataFormatError(f"Image root {path.parent} does not exist: {FIX_HINT}.")
    if not path.is_file():
        raise DataFormatError(f"No {path.name} in {path.parent}: {FIX_HINT}.")
    frame = pd.read_csv(path, dtype={"rare_species_id": str, "file_path": str})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{path} lacks the column(s) {', '.join(missing)}; the expected columns are "
            f"{','.join(COLUMNS)}."
        )
    empty = frame[list(COLUMNS)].isna().any(axis=1)
    if empty.any():
        first = int(empty.idxmax())
        raise DataFormatError(
            f"{path} has {int(empty.sum())} row(s) with empty fields (first at row {first + 2})."
        )
    return frame


def check_target(target: str) -> str:
    return check_choice("data.target", target, TARGETS)


def class_names(frame: pd.DataFrame, target: str) -> list[str]:
    """Class index i is the i-th sorted name: stable across runs and splits."""
    return sorted(frame[check_target(target)].astype(str).unique())


def phylum_of(frame: pd.DataFrame) -> dict[str, str]:
    """Family -> phylum, for reports a biologist can read."""
    return dict(zip(frame["family"], frame["phylum"], strict=True))
