"""The on-disk format of the rare-species data set and the checks that guard it.

An image root holds ``metadata.csv`` (one row per image) and the images at
``<root>/<file_path>``, where ``file_path`` is
``<phylum>_<family>/<eol_content_id>_<eol_page_id>_eol-full-size-copy.jpg``.

The columns of :data:`COLUMNS` are required; any rank of :data:`RANKS` the index has
(``python -m src.data.download`` writes them all) can be the target. ``species`` is
``eol_page_id`` (as text) when the index has no ``species`` column: a page is one species.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PureWindowsPath

import pandas as pd

from src.errors import ConfigError, UserFacingError, check_choice

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
FILTERED_INDEX = "metadata_onlyanimals.csv"  # the rows the "only animals" filter keeps
# the taxonomic ranks, highest first: data.target is one of those the index has
RANKS: tuple[str, ...] = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
SPECIES_ID = "eol_page_id"  # identifies the species when the index has no species column
NAME_COLUMNS: tuple[str, ...] = ("sciName", "common")  # readable species names, when present
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


def available_ranks(frame: pd.DataFrame) -> tuple[str, ...]:
    """The ranks of :data:`RANKS` that ``frame`` can be classified by, highest first."""
    return tuple(
        rank
        for rank in RANKS
        if rank in frame.columns or (rank == "species" and SPECIES_ID in frame.columns)
    )


def check_target(target: str, frame: pd.DataFrame | None = None) -> str:
    """``target`` if it is a rank (and, given ``frame``, one that ``frame`` has)."""
    check_choice("data.target", target, RANKS)
    if frame is not None and target not in available_ranks(frame):
        raise ConfigError(
            f"data.target={target!r} is not a column of this index, whose ranks are "
            f"{', '.join(available_ranks(frame))}: choose one of those, or use an index with "
            f"a {target} column (python -m src.data.download writes every rank of the hub's "
            "catalog)."
        )
    return target


def target_values(frame: pd.DataFrame, target: str) -> pd.Series:
    """The class of every row at rank ``target`` (``species``: ``eol_page_id`` if need be)."""
    check_target(target, frame)
    if target in frame.columns:
        return frame[target]
    return frame[SPECIES_ID].astype(str).rename(target)


def with_target(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """``frame`` with a ``target`` column every row has; ``frame`` itself when it has one.

    Below family (genus, species) every class must lie inside one family: a name that
    two families share (a species epithet without its genus, say) would merge two taxa.
    """
    values = target_values(frame, target)
    empty = values.isna()
    if empty.any():
        raise DataFormatError(
            f"The {target} column has {int(empty.sum())} empty field(s) (first at row "
            f"{int(empty.to_numpy().argmax()) + 2}): fill them in or choose another data.target."
        )
    if RANKS.index(target) > RANKS.index("family"):
        families = frame["family"].groupby(values.astype(str).to_numpy()).nunique()
        shared = families[families > 1]
        if not shared.empty:
            raise DataFormatError(
                f"{len(shared)} {target} name(s) lie in more than one family (e.g. "
                f"{', '.join(map(str, shared.index[:3]))}), so they cannot name classes: make "
                f"them unique (a species as genus and epithet) or choose another data.target."
            )
    if target in frame.columns:
        return frame
    return frame.assign(**{target: values})


def class_names(frame: pd.DataFrame, target: str) -> list[str]:
    """Class index i is the i-th sorted name: stable across runs and splits."""
    return sorted(target_values(frame, target).astype(str).unique())


def phylum_of(frame: pd.DataFrame, target: str = "family") -> dict[str, str]:
    """Each class of rank ``target`` -> its phylum, for reports a biologist can read.

    Empty when the target is the phylum or above it (the kingdom).
    """
    if RANKS.index(check_target(target)) <= RANKS.index("phylum"):
        return {}
    return dict(zip(target_values(frame, target).astype(str), frame["phylum"], strict=True))


def species_names(frame: pd.DataFrame, target: str) -> dict[str, str]:
    """Species -> "scientific name (common name)" when the target is species and the index
    has those columns (a downloaded index does); else empty."""
    present = [c for c in NAME_COLUMNS if c in frame.columns]
    if target != "species" or not present:
        return {}
    names = frame[present].astype("string").fillna("")
    readable = names[present[0]]
    if len(present) == 2:
        readable = (readable + " (" + names[present[1]] + ")").str.replace(" ()", "", regex=False)
    keys = target_values(frame, target).astype(str)
    return {k: v.strip() for k, v in zip(keys, readable) if v.strip()}
