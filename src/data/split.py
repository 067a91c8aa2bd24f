"""Stratified train/val/test split, reproducing the original project's split.

The original ran scikit-learn's ``train_test_split`` twice with ``random_state=42``:
80 % train against 20 %, then the 20 % halved. Doing the same on the index in file
order gives the same rows (9,586 / 1,198 / 1,199 on the real index).

    python -m src.data.split METADATA.csv --out DIR [--target family] [--seed 42]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from src.data.schema import read_index, with_target
from src.errors import UserFacingError
from src.runs.files import write_csv

SPLITS: tuple[str, ...] = ("train", "val", "test")


class SplitError(UserFacingError, ValueError):
    """The index cannot be split as asked."""


# the original's split: 80/10/10 in two stratified stages, random_state 42
SEED, VAL_FRACTION, TEST_FRACTION = 42, 0.1, 0.1


def min_class_size(val_fraction: float, test_fraction: float) -> int:
    """Smallest class that still puts at least one image in each split (and 2 in the holdout)."""
    smallest = min(val_fraction, test_fraction, 1.0 - val_fraction - test_fraction)
    return max(
        3, math.ceil(1 / smallest - 1e-9), math.ceil(2 / (val_fraction + test_fraction) - 1e-9)
    )


def _check_class_sizes(frame: pd.DataFrame, target: str, minimum: int) -> None:
    counts = frame[target].value_counts()
    small = counts[counts < minimum]
    if not small.empty:
        listed = ", ".join(f"{name} ({count})" for name, count in small.sort_values().items())
        raise SplitError(
            f"{len(small)} {target}(s) have too few images for a stratified split "
            f"(at least {minimum} needed): {listed}. Remove them from metadata.csv, "
            "or gather more images of them."
        )


def stratified_split(
    frame: pd.DataFrame,
    target: str = "family",
    seed: int = SEED,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
) -> dict[str, pd.DataFrame]:
    """Split ``frame`` into train/val/test, stratified on ``target``; rows keep their order.

    ``target`` is any rank ``frame`` has (see :func:`~src.data.schema.with_target`: a
    ``species`` column is added from ``eol_page_id`` when missing).
    """
    frame = with_target(frame, target)
    holdout = val_fraction + test_fraction
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and holdout < 1):
        raise SplitError(
            f"val and test fractions {val_fraction}, {test_fraction} must be in (0, 1)."
        )
    _check_class_sizes(frame, target, min_class_size(val_fraction, test_fraction))
    try:
        train, rest = train_test_split(
            frame, test_size=holdout, stratify=frame[target], random_state=seed, shuffle=True
        )
        val, test = train_test_split(
            rest,
            test_size=test_fraction / holdout,
            stratify=rest[target],
            random_state=seed,
            shuffle=True,
        )
    except ValueError as err:  # e.g. a class left with one image in the holdout
        raise SplitError(f"Stratified split on {target} failed: {err}") from err
    return {"train": train, "val": val, "test": test}


def write_split(splits: dict[str, pd.DataFrame], out_dir: str | Path) -> Path:
    out = Path(out_dir)
    for name in SPLITS:
        write_csv(splits[name], out / f"{name}.csv")
    return out


def has_split(directory: str | Path) -> bool:
    return all((Path(directory) / f"{name}.csv").is_file() for name in SPLITS)


def read_split(directory: str | Path, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Read a saved split and tie it back to ``frame`` by ``file_path``.

    Every saved row must still be in the index and the splits must not overlap, so a
    stale or hand-edited split cannot leak test images into training.
    """
    directory = Path(directory)
    by_path = frame.reset_index().set_index("file_path")
    seen: set[str] = set()
    splits = {}
    for name in SPLITS:
        paths = pd.read_csv(directory / f"{name}.csv", usecols=["file_path"])["file_path"]
        unknown = paths[~paths.isin(by_path.index)]
        if not unknown.empty:
            raise SplitError(
                f"{directory / (name + '.csv')} lists {len(unknown)} image(s) not in the index "
                f"(e.g. {unknown.iloc[0]}); delete {directory} to split again."
            )
        overlap = seen.intersection(paths)
        if overlap:
            raise SplitError(
                f"{directory}: {len(overlap)} image(s) appear in more than one split "
                f"(e.g. {sorted(overlap)[0]}); delete {directory} to split again."
            )
        seen.update(paths)
        rows = by_path.loc[paths].reset_index().set_index("index")
        rows.index.name = None
        splits[name] = rows[frame.columns]
    return splits


def load_or_make_split(
    frame: pd.DataFrame, directory: str | Path | None, **split_kwargs
) -> dict[str, pd.DataFrame]:
    """Reuse the split saved in ``directory`` if there is one, else make it and save it there."""
    if directory is not None and has_split(directory):
        return read_split(directory, frame)
    splits = stratified_split(frame, **split_kwargs)
    if directory is not None:
        write_split(splits, directory)
    return splits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.data.split",
        description="Write a stratified train/val/test split of a rare-species metadata.csv.",
    )
    parser.add_argument("metadata", type=Path, help="path to metadata.csv")
    parser.add_argument("--out", type=Path, required=True, help="folder for train/val/test.csv")
    parser.add_argument(
        "--target", default="family", help="rank to stratify on (family, species, ...)"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    parser.add_argument("--test-fraction", type=float, default=TEST_FRACTION)
    args = parser.parse_args(argv)
    try:
        splits = stratified_split(
            read_index(args.metadata),
            target=args.target,
            seed=args.seed,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
        )
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    write_split(splits, args.out)
    counts = " / ".join(f"{name} {len(splits[name]):,}" for name in SPLITS)
    print(f"Wrote {args.out}/{{train,val,test}}.csv: {counts}")


if __name__ == "__main__":
    main()
