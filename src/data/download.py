"""Fetch the real images from the Hugging Face hub and lay them out in the project's format.

    python -m src.data.download --out data/rare_species          # needs internet
    python -m src.data.download --out data/rare_species --from HF_SNAPSHOT_DIR

The hub's layout (``dataset/<kingdom-phylum-class-order-family-genus-species>/
<content>_<page>_eol_full-size-copy.jpg`` plus ``metadata/rarespecies-catalog.csv``)
becomes ``<out>/metadata.csv`` and
``<out>/<phylum>_<family>/<content>_<page>_eol-full-size-copy.jpg``.
By default the rows are those of the shipped real index (11,983 images, the original's
duplicates already removed), so ids and the split match the original exactly.
``metadata.csv`` also keeps the catalog's other ranks and names (:data:`EXTRA_COLUMNS`),
so any rank can be the target: ranks in lower case as the index's, ``species`` as genus
and epithet (the catalog's ``species`` is the epithet alone, which several genera share).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
from pathlib import Path

import pandas as pd

from src.data.checksums import LICENSES, expected_md5, mismatches, read_licenses
from src.data.schema import (
    COLUMNS,
    METADATA_FILE,
    NAME_COLUMNS,
    DataFormatError,
    image_rel_path,
    read_reference_index,
)
from src.errors import UserFacingError, check_choice
from src.runs.files import OutputError, write_csv

REPO_ID = "imageomics/rare-species"
CATALOG = Path("metadata") / "rarespecies-catalog.csv"
IMAGE_DIR = "dataset"
HF_NAME = re.compile(r"^(\d+)_(\d+)_eol[_-]full-size-copy\.jpe?g$", re.IGNORECASE)
LINK_MODES = ("hardlink", "copy", "symlink", "move")
MD5_POLICIES = ("error", "skip")
# the catalog's columns beyond the index's own, kept in metadata.csv when the catalog has them
EXTRA_RANKS = ("class", "order", "genus", "species")
EXTRA_COLUMNS = (*EXTRA_RANKS, *NAME_COLUMNS)
IMAGE_KEY = ["eol_content_id", "eol_page_id"]
BAD_MD5_FILE = "bad_md5.csv"
log = logging.getLogger(__name__)


class DownloadError(UserFacingError, RuntimeError):
    """The data set could not be fetched or converted."""


def fetch(cache_dir: Path, revision: str | None = None) -> Path:
    """Download (or reuse) the hub snapshot; one clear sentence when the hub is unreachable."""
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo_id=REPO_ID,
                repo_type="dataset",
                revision=revision,
                local_dir=cache_dir,
                allow_patterns=[f"{IMAGE_DIR}/**", f"{CATALOG.parent}/**"],
            )
        )
    except Exception as err:  # offline, DNS, proxy, auth: all end the same way for a user
        raise DownloadError(
            f"Could not download {REPO_ID} from the Hugging Face hub ({type(err).__name__}): "
            "run this command on a machine with internet access, or copy a snapshot of the "
            "data set here and pass --from DIR, or train on data=synthetic."
        ) from err


def read_catalog(snapshot: Path) -> pd.DataFrame:
    path = snapshot / CATALOG
    if not path.is_file():
        raise DataFormatError(f"{path} is missing: {snapshot} is not a snapshot of {REPO_ID}.")
    catalog = pd.read_csv(path, skipinitialspace=True)
    catalog.columns = [c.strip() for c in catalog.columns]
    needed = {"rarespecies_id", "eol_content_id", "eol_page_id", "kingdom", "phylum", "family"}
    missing = sorted(needed - set(catalog.columns))
    if missing:
        raise DataFormatError(f"{path} lacks the column(s) {', '.join(missing)}.")
    return catalog


def find_images(snapshot: Path) -> dict[tuple[int, int], Path]:
    """(eol_content_id, eol_page_id) -> image file, from the hub's file names."""
    found = {}
    for path in sorted((snapshot / IMAGE_DIR).rglob("*")):
        match = HF_NAME.match(path.name)
        if match and path.is_file():
            found[(int(match.group(1)), int(match.group(2)))] = path
    return found


def catalog_rows(catalog: pd.DataFrame) -> pd.DataFrame:
    """The catalog in the project's columns, one row per image (duplicates dropped), then
    the extra ranks and names it has (see :func:`catalog_taxa`)."""
    rows = catalog.drop_duplicates(IMAGE_KEY).copy()
    for column in ("kingdom", "phylum", "family"):
        rows[column] = rows[column].astype(str).str.strip().str.lower()
    rows["rare_species_id"] = rows["rarespecies_id"].astype(str)
    rows["file_path"] = [
        image_rel_path(p, f, c, g)
        for p, f, c, g in zip(
            rows["phylum"], rows["family"], rows["eol_content_id"], rows["eol_page_id"]
        )
    ]
    return with_taxa(rows[list(COLUMNS)].reset_index(drop=True), catalog)


def catalog_taxa(catalog: pd.DataFrame) -> pd.DataFrame:
    """Per image (content and page id), the catalog's :data:`EXTRA_COLUMNS` that it has.

    Ranks in lower case, as the index's; ``species`` as "genus epithet" (the catalog's
    ``species`` is the epithet: only with the genus does it name one species); ``sciName``
    and ``common`` as written.
    """
    present = [c for c in EXTRA_COLUMNS if c in catalog.columns]
    taxa = catalog.drop_duplicates(IMAGE_KEY)[IMAGE_KEY + present].copy()
    for column in present:
        taxa[column] = taxa[column].astype("string").str.strip()
    for column in (c for c in EXTRA_RANKS if c in present):
        taxa[column] = taxa[column].str.lower()
    if "species" in present and "genus" in present:
        epithet = ~taxa["species"].str.contains(" ", regex=False).fillna(True)
        taxa.loc[epithet, "species"] = taxa["genus"] + " " + taxa["species"]
    return taxa


def with_taxa(rows: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (in their order) with the catalog's extra ranks and names of each image."""
    taxa = catalog_taxa(catalog)
    keys = taxa[IMAGE_KEY].astype("int64")
    taxa = taxa.assign(**{c: keys[c] for c in IMAGE_KEY})
    merged = rows.astype({c: "int64" for c in IMAGE_KEY}).merge(taxa, on=IMAGE_KEY, how="left")
    return merged.set_axis(rows.index)


def place(source: Path, target: Path, mode: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    if mode == "hardlink":
        try:
            os.link(source, target)
            return
        except OSError:  # other file system: fall back to a copy
            mode = "copy"
    if mode == "copy":
        shutil.copy2(source, target)
    elif mode == "symlink":
        target.symlink_to(source.resolve())
    elif mode == "move":
        shutil.move(source, target)


def convert(
    snapshot: str | Path,
    out: str | Path,
    index: pd.DataFrame | None = None,
    mode: str = "hardlink",
    on_bad_md5: str = "error",
) -> pd.DataFrame:
    """Lay a hub snapshot out as ``<out>/metadata.csv`` + images; every row's file must exist.

    ``index`` fixes the rows (default in the CLI: the shipped real index); without it the
    catalog's rows are used. Either way each row gets the catalog's other ranks and names
    (:data:`EXTRA_COLUMNS`). Each file is checked against its MD5 in licenses.csv and
    metadata.csv is written only for files that pass (see :func:`verified_rows`).
    """
    check_choice("mode", mode, LINK_MODES)
    check_choice("--on-bad-md5", on_bad_md5, MD5_POLICIES)
    snapshot, out = Path(snapshot), Path(out)
    catalog = read_catalog(snapshot)
    rows = catalog_rows(catalog) if index is None else with_taxa(index[list(COLUMNS)], catalog)
    images = find_images(snapshot)
    keys = list(zip(rows["eol_content_id"].astype(int), rows["eol_page_id"].astype(int)))
    missing = [rows["file_path"].iloc[i] for i, key in enumerate(keys) if key not in images]
    if missing:
        raise DownloadError(
            f"{len(missing)} of {len(rows)} images are not in {snapshot / IMAGE_DIR} "
            f"(e.g. {missing[0]}); the download is incomplete: run the command again."
        )
    for key, rel in zip(keys, rows["file_path"]):
        place(images[key], out / rel, mode)
    not_written = [p for p in rows["file_path"] if not (out / p).is_file()]
    if not_written:
        raise DownloadError(
            f"{len(not_written)} images could not be written, e.g. {not_written[0]}."
        )
    rows = verified_rows(snapshot, out, rows, on_bad_md5)
    write_csv(rows, out / METADATA_FILE)
    return rows


def verified_rows(snapshot: Path, out: Path, rows: pd.DataFrame, on_bad_md5: str) -> pd.DataFrame:
    """The rows whose converted file matches its MD5 in licenses.csv.

    A mismatch stops the conversion (``error``) or leaves the row out (``skip``); either
    way the failed files are listed in bad_md5.csv.
    """
    licenses = read_licenses(snapshot)
    if licenses is None:
        log.warning(
            "%s is missing: the %d images are unverified (no MD5 to check them against).",
            snapshot / LICENSES,
            len(rows),
        )
        return rows
    rows = rows.reset_index(drop=True)  # bad.index then names positions
    expected = expected_md5(rows, licenses)
    unlisted = expected.count("")
    if unlisted:
        log.warning("%d images are not in %s and are unverified.", unlisted, LICENSES)
    bad = mismatches(out, rows, expected)
    if bad.empty:
        (out / BAD_MD5_FILE).unlink(missing_ok=True)  # from an earlier, damaged download
        return rows
    listing = write_csv(bad, out / BAD_MD5_FILE)
    examples = ", ".join(bad["file_path"].head(3))
    if on_bad_md5 == "error":
        (out / METADATA_FILE).unlink(missing_ok=True)  # an older index must not look current
        raise DownloadError(
            f"{len(bad)} of {len(rows)} images do not match their MD5 in {LICENSES} "
            f"(e.g. {examples}; all in {listing}): delete them from {snapshot} and download "
            "again, or pass --on-bad-md5 skip to leave them out; metadata.csv was not written."
        )
    log.warning(
        "Left out %d images whose MD5 does not match %s (e.g. %s); listed in %s.",
        len(bad),
        LICENSES,
        examples,
        listing,
    )
    return rows.drop(index=bad.index).reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.data.download",
        description=f"Download {REPO_ID} and convert it to the project's on-disk format.",
    )
    parser.add_argument("--out", type=Path, required=True, help="image root to create")
    parser.add_argument(
        "--from",
        dest="snapshot",
        type=Path,
        help="an existing snapshot of the hub repository (skips the download)",
    )
    parser.add_argument(
        "--cache", type=Path, help="where to keep the hub snapshot (default: <out>/.hf_snapshot)"
    )
    parser.add_argument("--revision", help="hub revision (commit) to download")
    parser.add_argument(
        "--mode",
        choices=LINK_MODES,
        default="hardlink",
        help="how images get from the snapshot into --out",
    )
    parser.add_argument(
        "--rows",
        choices=("reference", "catalog"),
        default="reference",
        help="reference: the shipped 11,983-row index; catalog: the hub catalog",
    )
    parser.add_argument(
        "--on-bad-md5",
        choices=MD5_POLICIES,
        default="error",
        help=f"error: stop when a file does not match licenses.csv; skip: leave such files "
        f"out of metadata.csv (listed in {BAD_MD5_FILE})",
    )
    args = parser.parse_args(argv)
    try:
        snapshot = args.snapshot or fetch(args.cache or args.out / ".hf_snapshot", args.revision)
        index = read_reference_index() if args.rows == "reference" else None
        rows = convert(snapshot, args.out, index=index, mode=args.mode, on_bad_md5=args.on_bad_md5)
    except (DownloadError, DataFormatError, OutputError) as err:
        parser.exit(1, f"error: {err}\n")
    print(f"Wrote {len(rows):,} images of {rows['family'].nunique()} families to {args.out}")


if __name__ == "__main__":
    main()
