"""The pre-scan's memory: each image's verdict, kept so an unchanged file is decoded once.

A verdict (:class:`~src.data.images.ImageCheck`) holds for one file content and the
settings that decide it (``max_pixels``, ``on_non_rgb``). It is stored in a small CSV
keyed by the file's path, size and modification time (ns); a file that changed, or a
setting that did, is checked again. The CSV is a cache: when it cannot be read it is
ignored, and when it cannot be written (a read-only image root) the run goes on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from src.data import images
from src.data.images import DEFAULT_MAX_PIXELS, ImageCheck
from src.runs.files import OutputError, write_csv

log = logging.getLogger(__name__)
CHECKS_FILE = ".image_checks.csv"
FIELDS = (
    "path",
    "size",
    "mtime_ns",
    "max_pixels",
    "on_non_rgb",
    "reason",
    "mode",
    "width",
    "height",
)
Key = tuple[str, int, str]  # path, max_pixels, on_non_rgb: what one row is about
Stamp = tuple[int, int]  # size, mtime_ns: which content of the file it judged


def _stamp(path: str) -> Stamp | None:
    try:
        stat = os.stat(path)
    except OSError:  # missing: cheap to find again, nothing to remember
        return None
    return stat.st_size, stat.st_mtime_ns


def _read(cache_file: Path) -> dict[Key, tuple[Stamp, ImageCheck]]:
    try:
        frame = pd.read_csv(cache_file, keep_default_na=False, dtype={"path": str})
        rows = frame[list(FIELDS)].itertuples(index=False)
        return {
            (r.path, int(r.max_pixels), r.on_non_rgb): (
                (int(r.size), int(r.mtime_ns)),
                ImageCheck(r.path, r.reason or None, r.mode or None, int(r.width), int(r.height)),
            )
            for r in rows
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, UnicodeDecodeError, pd.errors.ParserError) as err:
        log.debug("Ignoring the image verdicts in %s (%s).", cache_file, type(err).__name__)
        return {}


def _write(cache_file: Path, known: dict[Key, tuple[Stamp, ImageCheck]]) -> None:
    rows = [
        (
            key[0],
            stamp[0],
            stamp[1],
            key[1],
            key[2],
            c.reason or "",
            c.mode or "",
            c.width,
            c.height,
        )
        for key, (stamp, c) in known.items()
    ]
    try:
        write_csv(pd.DataFrame(rows, columns=list(FIELDS)), cache_file)
    except OutputError as err:  # a read-only root only costs the next run a re-check
        log.debug("Image verdicts not kept: %s", err)


def check_images(
    paths: Iterable[str | Path],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_non_rgb: str = "convert",
    cache_file: Path | None = None,
) -> list[ImageCheck]:
    """:func:`~src.data.images.inspect_images`, decoding only files not judged before."""
    paths = [os.path.abspath(p) for p in paths]
    known = _read(cache_file) if cache_file else {}
    stamps = [_stamp(p) for p in paths]
    keys = [(p, int(max_pixels), on_non_rgb) for p in paths]

    def remembered(key: Key, stamp: Stamp | None) -> bool:
        return stamp is not None and key in known and known[key][0] == stamp

    todo = [i for i, (k, s) in enumerate(zip(keys, stamps)) if not remembered(k, s)]
    if todo:
        log.info("Decoding %d of %d images once to check them.", len(todo), len(paths))
    fresh = images.inspect_images([paths[i] for i in todo], max_pixels, on_non_rgb)
    for i, check in zip(todo, fresh):
        if stamps[i] is not None:
            known[keys[i]] = (stamps[i], check)
    if cache_file and any(stamps[i] is not None for i in todo):
        _write(cache_file, known)
    fresh_by_index = dict(zip(todo, fresh))
    return [
        fresh_by_index[i] if i in fresh_by_index else known[keys[i]][1] for i in range(len(paths))
    ]
