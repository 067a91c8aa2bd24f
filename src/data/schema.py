"""The on-disk format of the rare-species data set and the checks that guard it.

An image root holds ``metadata.csv`` (one row per image) and the images at
``<root>/<file_path>``, where ``file_path`` is
``<phylum>_<family>/<eol_content_id>_<eol_page_id>_eol-full-size-copy.jpg``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PureWindowsPath

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
    frame = _read_csv(path)
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
    if frame.empty:
        raise DataFormatError(f"{path} has a header but no rows: {FIX_HINT}.")
    _check_duplicates(path, frame)
    _check_paths_stay_inside(path, frame)
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"rare_species_id": str, "file_path": str}, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path} is empty (0 bytes or no header): {FIX_HINT}.") from None
    except UnicodeDecodeError as err:
        raise DataFormatError(
            f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
            f"{err.start}): save it as UTF-8 and try again."
        ) from None
    except pd.errors.ParserError as err:
        raise DataFormatError(
            f"{path} is not a readable CSV ({str(err).strip()}): fix that line."
        ) from None


def _check_duplicates(path: Path, frame: pd.DataFrame) -> None:
    """One row per image: a repeated row would land in two splits and leak test images."""
    for column in ("rare_species_id", "file_path"):
        repeated = frame[column][frame[column].duplicated(keep=False)]
        if repeated.empty:
            continue
        examples = ", ".join(repeated.drop_duplicates().head(3))
        raise DataFormatError(
            f"{path} has {len(repeated) - repeated.nunique()} duplicate row(s) by {column} "
            f"(e.g. {examples}): keep one row per image."
        )


def _check_paths_stay_inside(path: Path, frame: pd.DataFrame) -> None:
    """file_path is relative to the image root; '..' or an absolute path would leave it."""
    escaping = [p for p in frame["file_path"] if _escapes_root(p)]
    if escaping:
        raise DataFormatError(
            f"{path} has {len(escaping)} file_path value(s) outside the image root "
            f"(e.g. {', '.join(escaping[:3])}): use paths relative to {path.parent} "
            "without '..'."
        )


def _escapes_root(file_path: str) -> bool:
    # the Windows flavour splits on both / and \ and sees /x, C:\x and \\server\x as anchored
    windows = PureWindowsPath(file_path)
    return bool(windows.anchor) or ".." in windows.parts


def check_target(target: str) -> str:
    return check_choice("data.target", target, TARGETS)


def class_names(frame: pd.DataFrame, target: str) -> list[str]:
    """Class index i is the i-th sorted name: stable across runs and splits."""
    return sorted(frame[check_target(target)].astype(str).unique())


def phylum_of(frame: pd.DataFrame) -> dict[str, str]:
    """Family -> phylum, for reports a biologist can read."""
    return dict(zip(frame["family"], frame["phylum"], strict=True))
