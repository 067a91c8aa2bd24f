"""MD5 checks of downloaded images against the hub's ``metadata/licenses.csv``.

licenses.csv has one row per image with its ``md5`` (and ``rarespecies_id``,
``eol_content_id``, ``eol_page_id``, licence fields). A row of the index is matched by
``eol_content_id`` + ``eol_page_id``, or else by ``rarespecies_id``.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from src.data.schema import DataFormatError

LICENSES = Path("metadata") / "licenses.csv"
CHUNK = 1 << 20


def read_licenses(snapshot: Path) -> pd.DataFrame | None:
    """The snapshot's licenses.csv as text columns, or None when it is not there."""
    path = snapshot / LICENSES
    if not path.is_file():
        return None
    try:
        licenses = pd.read_csv(path, skipinitialspace=True, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path} cannot be read ({type(err).__name__}).") from None
    licenses.columns = [c.strip() for c in licenses.columns]
    if "md5" not in licenses.columns:
        raise DataFormatError(f"{path} lacks the column md5, so no image can be verified.")
    return licenses


def expected_md5(rows: pd.DataFrame, licenses: pd.DataFrame) -> list[str]:
    """Each row's MD5 from ``licenses`` ("" when licenses.csv does not list the image)."""
    md5 = licenses["md5"].str.strip().str.lower()
    by_pair, by_id = {}, {}
    if {"eol_content_id", "eol_page_id"} <= set(licenses.columns):
        pairs = zip(licenses["eol_content_id"].str.strip(), licenses["eol_page_id"].str.strip())
        by_pair = dict(zip(pairs, md5))
    if "rarespecies_id" in licenses.columns:
        by_id = dict(zip(licenses["rarespecies_id"].str.strip(), md5))
    return [
        by_pair.get((str(content), str(page))) or by_id.get(str(rid).strip(), "")
        for content, page, rid in zip(
            rows["eol_content_id"], rows["eol_page_id"], rows["rare_species_id"]
        )
    ]


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def mismatches(root: Path, rows: pd.DataFrame, expected: list[str]) -> pd.DataFrame:
    """The rows whose file under ``root`` does not hash to its expected MD5 (listed ones only)."""
    listed = [i for i, md5 in enumerate(expected) if md5]
    paths = [root / rows["file_path"].iloc[i] for i in listed]
    with ThreadPoolExecutor(max_workers=8) as pool:  # hashlib hashes without the GIL
        actual = list(pool.map(md5_of, paths))
    bad = [(i, a) for i, a in zip(listed, actual) if a != expected[i]]
    return rows.iloc[[i for i, _ in bad]].assign(
        expected_md5=[expected[i] for i, _ in bad], actual_md5=[a for _, a in bad]
    )
