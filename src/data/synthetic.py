"""A synthetic stand-in for the rare-species images, in exactly the real on-disk format.

Rows are real rows of the shipped index (real family names, ids and file paths); only
the pixels are made up. Each family gets a striped "animal" of its own hue, stripe
angle and stripe frequency, with a body shape per phylum, placed, sized and coloured
with noise, on a random background, so a model can learn families but not trivially.
About 15 % of the images are non-animal outliers (text, blank frames, maps), as the
real set has, for the zero-shot filter to find. ``synthetic_truth.csv`` says which.

A set made for ``target="species"`` (``data.target=species``) also gives each species of a
family a pattern of its own (stripes, checks, dashes or rings, at up to three stripe
frequencies), and its ``tiny`` scale keeps whole species (3 of each family, 12 images each)
so that a species split has every species in train, val and test. Every other target gets
the family-level set, whose rows and pixels do not depend on the target.

    python -m src.data.synthetic --out DIR [--scale full|small|tiny] [--seed 0] [--target species]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from src.data.schema import (
    COLUMNS,
    FILTERED_INDEX,
    METADATA_FILE,
    RANKS,
    SPECIES_ID,
    read_reference_index,
)
from src.errors import UserFacingError, check_choice
from src.runs.files import write_csv

SCALES = {"full": None, "small": 24, "tiny": 6}  # number of families; None: all 202
DEFAULT_SIZES = {"full": (256, 512), "small": (80, 128), "tiny": (48, 64)}
TINY_SHRINK, TINY_MIN_PER_FAMILY = 5, 12  # tiny keeps 1/5 of each family, at least 12
TINY_SPECIES_PER_FAMILY, TINY_PER_SPECIES = 3, 12  # tiny for a species target
PATTERNS = ("stripes", "checks", "dashes", "rings")  # a species' look inside its family
SPECIES_FREQUENCIES = (1.0, 1.6, 2.2)  # x the family's stripe frequency, after the patterns
OUTLIER_KINDS = ("text", "blank", "map")
TRUTH_FILE = "synthetic_truth.csv"
DONE_FILE = ".synthetic.json"
PARALLEL_FROM = 500  # fewer images than this are written in-process (no pool start-up)


class SyntheticDataError(UserFacingError, FileExistsError):
    """The cache folder holds a synthetic data set made with other settings."""


PHYLUM_SHAPES = {"chordata": 0, "arthropoda": 1, "cnidaria": 2, "mollusca": 3, "echinodermata": 4}


def level_of(target: str) -> str:
    """The set a target needs: ``species`` (species look different) or ``family``."""
    return "species" if check_choice("data.target", target, RANKS) == "species" else "family"


def synthetic_dir_name(
    scale: str, seed: int, sizes=None, outlier_fraction: float = 0.15, target: str = "family"
) -> str:
    """A cache folder name per synthetic data set, so different settings never collide."""
    name = f"synthetic-{scale}-seed{seed}"
    if sizes:
        name += f"-{sizes[0]}to{sizes[1]}px"
    if outlier_fraction != 0.15:
        name += f"-outliers{outlier_fraction:g}"
    if level_of(target) == "species":
        name += "-species"
    return name


def select_rows(scale: str, target: str = "family") -> pd.DataFrame:
    """Rows of the real index kept at ``scale``: every family at ``full``, else a spread.

    The reduced scales keep the largest families (the imbalance is the point) and one
    family of each phylum, then fill up with families spread over the alphabet. ``tiny``
    keeps part of each family: its first rows, or for a species target its first
    species whole (see :func:`tiny_species`); the other scales do not depend on the target.
    """
    check_choice("data.synthetic.scale", scale, list(SCALES))
    level = level_of(target)
    index = read_reference_index()
    wanted = SCALES[scale]
    if wanted is None:
        return index
    counts = index.groupby("family").size()
    phyla = index.groupby("family")["phylum"].first()
    chosen = list(counts.sort_values(ascending=False, kind="stable").index[: max(1, wanted // 8)])
    for phylum in sorted(phyla.unique()):
        if len(chosen) < wanted and phylum not in set(phyla[chosen]):
            chosen.append(phyla[phyla == phylum].index.sort_values()[0])
    rest = [f for f in counts.index.sort_values() if f not in chosen]
    step = len(rest) / max(1, wanted - len(chosen))
    chosen += [rest[int(i * step)] for i in range(wanted - len(chosen))]
    rows = index[index["family"].isin(chosen)]
    if scale == "tiny" and level == "species":
        return tiny_species(rows)
    if scale == "tiny":
        keep = (counts // TINY_SHRINK).clip(lower=TINY_MIN_PER_FAMILY)
        rank = rows.groupby("family").cumcount()
        rows = rows[rank < rows["family"].map(keep)]
    return rows


def tiny_species(rows: pd.DataFrame) -> pd.DataFrame:
    """The first species of each family (in index order), each with its first images.

    Whole species, not scattered rows: every species keeps ``TINY_PER_SPECIES`` images
    (each real species has at least 21), enough for a stratified species split.
    """
    species = rows.drop_duplicates(SPECIES_ID)
    kept = set(species.groupby("family").head(TINY_SPECIES_PER_FAMILY)[SPECIES_ID])
    rows = rows[rows[SPECIES_ID].isin(kept)]
    return rows[rows.groupby(SPECIES_ID).cumcount() < TINY_PER_SPECIES]


def family_styles(families: list[str]) -> dict[str, tuple[float, float, float]]:
    """(hue, stripe angle, stripes per body) per family, spread as far apart as the count allows."""
    n = len(families)
    hues = min(12, n)
    angles = min(6, math.ceil(n / hues))
    styles = {}
    for i, family in enumerate(sorted(families)):
        hue = (i % hues) / hues
        angle = ((i // hues) % angles) * math.pi / angles
        frequency = 3.0 + 2.5 * (i // (hues * angles))
        styles[family] = (hue, angle, frequency)
    return styles


def species_styles(rows: pd.DataFrame) -> dict[int, tuple[float, float, float, int]]:
    """(hue, stripe angle, stripes per body, pattern) per species (``eol_page_id``).

    A species has its family's hue, angle and shape; the species of a family (sorted by
    page id) take the patterns in turn, then faster stripes. The first species of each
    family looks exactly like its family in the family-level set.
    """
    families = family_styles(sorted(rows["family"].unique()))
    styles = {}
    pages = rows.drop_duplicates(SPECIES_ID).sort_values(SPECIES_ID, kind="stable")
    for family, group in pages.groupby("family"):
        hue, angle, frequency = families[family]
        for j, page in enumerate(group[SPECIES_ID]):
            faster = SPECIES_FREQUENCIES[(j // len(PATTERNS)) % len(SPECIES_FREQUENCIES)]
            styles[int(page)] = (hue, angle, frequency * faster, j % len(PATTERNS))
    return styles


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(h.shape + (3,))
    for k, (r, g, b) in enumerate(choices):
        mask = i == k
        rgb[mask] = np.stack([r[mask], g[mask], b[mask]], axis=-1)
    return rgb


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    a, b = rng.uniform(0.2, 0.8, size=(2, 3))
    theta = rng.uniform(0, 2 * math.pi)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    t = (x * math.cos(theta) + y * math.sin(theta)) % 1.0
    return a + (b - a) * t[..., None]


def _body_mask(shape_id: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of the body in its own rotated coordinates (u, v in units of the body radius)."""
    radius, angle = np.hypot(u, v), np.arctan2(v, u)
    if shape_id == 1:  # arthropoda: long and segmented
        return (u / 1.0) ** 2 + (v / 0.45) ** 2 * (1 + 0.3 * np.cos(6 * u)) < 1
    if shape_id == 2:  # cnidaria: radial, many arms
        return radius < 0.55 + 0.35 * np.cos(8 * angle)
    if shape_id == 3:  # mollusca: a shell, round with a notch
        return (radius < 0.9) & ~((u > 0.3) & (np.abs(v) < 0.2))
    if shape_id == 4:  # echinodermata: five-armed star
        return radius < 0.45 + 0.45 * np.cos(5 * angle) ** 2
    return u**2 + (v / 0.7) ** 2 < 1  # chordata: an oval


def render_animal(rng: np.random.Generator, style, shape_id: int, size: tuple[int, int]):
    """One noisy "animal": its family's hue, stripe angle and frequency, jittered.

    ``style`` is (hue, angle, frequency) or, for a species, (hue, angle, frequency,
    pattern) with pattern an index of :data:`PATTERNS` (0, stripes, is the family look).
    """
    height, width = size
    hue, angle, frequency = style[:3]
    pattern = style[3] if len(style) > 3 else 0
    image = _background(rng, height, width)
    cy, cx = rng.uniform(0.35, 0.65, size=2) * (height, width)
    radius = rng.uniform(0.25, 0.4) * min(height, width)
    turn = rng.uniform(0, 2 * math.pi)
    y, x = np.mgrid[0:height, 0:width]
    u = ((x - cx) * math.cos(turn) + (y - cy) * math.sin(turn)) / radius
    v = (-(x - cx) * math.sin(turn) + (y - cy) * math.cos(turn)) / radius
    mask = _body_mask(shape_id, u, v)
    stripe_angle = angle + rng.normal(0, 0.08)
    # Stripes are fixed to the image axes (not the body) so the angle is a family trait.
    s = (x * math.cos(stripe_angle) + y * math.sin(stripe_angle)) / min(height, width)
    jitter = rng.uniform(0.9, 1.1)
    wave = np.sin(2 * math.pi * frequency * jitter * s + rng.uniform(0, 6.3))
    if pattern:  # no random draws here: the family-level images stay as they were
        wave = _species_pattern(pattern, wave, frequency * jitter, stripe_angle, x, y, (cy, cx))
    h = np.full(mask.shape, (hue + rng.normal(0, 0.012)) % 1.0)
    body = _hsv_to_rgb(h, np.full(h.shape, rng.uniform(0.6, 0.9)), 0.5 + 0.3 * wave)
    image[mask] = body[mask]
    image += rng.normal(0, 0.05, size=image.shape)
    return Image.fromarray(np.clip(image * 255, 0, 255).astype(np.uint8), "RGB")


def _species_pattern(pattern: int, wave, frequency: float, angle: float, x, y, centre):
    """The stripes ``wave`` turned into checks, dashes or rings (patterns 1, 2, 3)."""
    side = min(x.shape)
    along = (-x * math.sin(angle) + y * math.cos(angle)) / side  # along the stripes
    if pattern == 1:  # checks: stripes crossed by stripes
        return wave * np.sin(2 * math.pi * frequency * along)
    if pattern == 2:  # dashes: every other stretch of each stripe dark
        return np.where(np.sin(math.pi * frequency * along) > 0, wave, -1.0)
    radius = np.hypot(y - centre[0], x - centre[1]) / side  # rings around the body's centre
    return np.sin(2 * math.pi * frequency * radius)


def write_oracle_index(root: Path, rows: pd.DataFrame) -> None:
    """``metadata_onlyanimals.csv``: the animal rows, what a perfect "only animals" filter
    would keep, so ``data=onlyanimals`` runs offline on synthetic data (``python -m
    src.filter`` replaces it with CLIP's decision)."""
    animal = ~outlier_flags(root, rows)
    write_csv(rows[animal], Path(root) / FILTERED_INDEX)


def outlier_flags(root: str | Path, rows: pd.DataFrame) -> np.ndarray | None:
    """Whether each of ``rows`` is a non-animal image, as ``root``'s ``synthetic_truth.csv``
    says; None when ``root`` has no such file (real data) or it misses some of the rows."""
    path = Path(root) / TRUTH_FILE
    if not path.is_file():
        return None
    kinds = pd.read_csv(path).set_index("file_path")["kind"]
    found = rows["file_path"].map(kinds)
    return None if found.isna().any() else (found != "animal").to_numpy()


def render_outlier(rng: np.random.Generator, kind: str, size: tuple[int, int]) -> Image.Image:
    """A non-animal image: a page of text, a blank frame or a map."""
    height, width = size
    if kind == "blank":
        colour = rng.uniform(0.1, 0.95, size=3)
        image = colour + rng.normal(0, 0.02, size=(height, width, 3))
        return Image.fromarray(np.clip(image * 255, 0, 255).astype(np.uint8), "RGB")
    if kind == "text":
        image = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(225, 256, 3)))
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=max(8, height // 12))
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz    "))
        for line in range(2, 11):
            text = "".join(rng.choice(letters, size=40))
            draw.text((4, line * height // 12), text, fill=(20, 20, 20), font=font)
        return image
    image = Image.new("RGB", (width, height), (150, 190, 225))  # a map: sea, land, grid
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 5))):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.15, 0.4) * width
        angles = np.sort(rng.uniform(0, 2 * math.pi, 12))
        radii = r * rng.uniform(0.5, 1.0, 12)
        points = [(cx + q * math.cos(a), cy + q * math.sin(a)) for a, q in zip(angles, radii)]
        draw.polygon(points, fill=(int(rng.integers(190, 235)), 215, 160), outline=(90, 90, 90))
    for k in range(1, 6):
        draw.line([(k * width // 6, 0), (k * width // 6, height)], fill=(120, 120, 120))
        draw.line([(0, k * height // 6), (width, k * height // 6)], fill=(120, 120, 120))
    return image


def render_row(seed: int, number: int, style, shape_id: int, sizes, outlier_fraction: float):
    """Image ``number`` of the data set; depends only on (seed, number), not on the order."""
    rng = np.random.default_rng([seed, number])
    side = int(rng.integers(sizes[0], sizes[1] + 1))
    aspect = rng.uniform(0.75, 1.33)
    size = (max(8, int(side / math.sqrt(aspect))), max(8, int(side * math.sqrt(aspect))))
    if rng.random() < outlier_fraction:
        kind = str(rng.choice(OUTLIER_KINDS))
        return render_outlier(rng, kind, size), kind
    return render_animal(rng, style, shape_id, size), "animal"


def _write_row(job: tuple) -> str:
    """Render and save one image (a worker's unit of work); returns its kind."""
    path, *render_args = job
    image, kind = render_row(*render_args)
    image.save(path, "JPEG", quality=90)
    return kind


def default_workers(rows: int) -> int:
    """Processes for writing ``rows`` images: one per usable core, up to 16; one for
    small sets (a pool's start-up would cost more than it saves)."""
    return 1 if rows < PARALLEL_FROM else min(16, len(os.sched_getaffinity(0)))


def write_synthetic(
    out: str | Path,
    scale: str = "small",
    seed: int = 0,
    sizes: tuple[int, int] | None = None,
    outlier_fraction: float = 0.15,
    progress: bool = True,
    workers: int | None = None,
    target: str = "family",
) -> Path:
    """Write images, ``metadata.csv`` and ``synthetic_truth.csv`` into ``out``.

    Every image depends only on (seed, row number), so the files are the same for any
    number of ``workers`` (default: one per usable core, up to 16). ``target="species"``
    writes the species-level set (see the module's docstring).
    """
    out = Path(out)
    rows = select_rows(scale, target).reset_index(drop=True)
    sizes = tuple(sizes or DEFAULT_SIZES[scale])
    if level_of(target) == "species":
        by_species = species_styles(rows)
        styles = [by_species[int(page)] for page in rows[SPECIES_ID]]
    else:
        by_family = family_styles(sorted(rows["family"].unique()))
        styles = [by_family[family] for family in rows["family"]]
    jobs = []
    for number, row in enumerate(rows.itertuples()):
        path = out / row.file_path
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = PHYLUM_SHAPES.get(row.phylum, 0)
        jobs.append((path, seed, number, styles[number], shape, sizes, outlier_fraction))
    workers = workers or default_workers(len(jobs))
    with ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers))
            kinds_iter = pool.map(_write_row, jobs, chunksize=32)
        else:
            kinds_iter = map(_write_row, jobs)
        kinds = list(
            tqdm(kinds_iter, total=len(jobs), desc="synthetic images", disable=not progress)
        )
    # whole files even when ``out`` is not a staging folder (python -m src.data.synthetic)
    write_csv(pd.DataFrame({"file_path": rows["file_path"], "kind": kinds}), out / TRUTH_FILE)
    write_oracle_index(out, rows[list(COLUMNS)])
    write_csv(rows[list(COLUMNS)], out / METADATA_FILE)  # last: it marks the set as usable
    return out


def ensure_synthetic(
    root: str | Path,
    scale: str = "small",
    seed: int = 0,
    sizes: tuple[int, int] | None = None,
    outlier_fraction: float = 0.15,
    target: str = "family",
) -> Path:
    """Write the data set into ``root`` once; later calls (and racing processes) reuse it.

    Writing goes to a temporary sibling folder that is renamed into place when complete,
    so an interrupted run never leaves a half-written data set behind.
    """
    root = Path(root)
    params = {
        "scale": scale,
        "seed": seed,
        "sizes": list(sizes or DEFAULT_SIZES[scale]),
        "outlier_fraction": outlier_fraction,
    }
    if level_of(target) == "species":  # family-level sets keep the record they always had
        params["level"] = "species"
    done = root / DONE_FILE
    if done.is_file():
        if json.loads(done.read_text()) != params:
            raise SyntheticDataError(
                f"{root} holds a synthetic data set made with other settings "
                f"({done.read_text().strip()}); delete it or choose another data.root."
            )
        if not (root / FILTERED_INDEX).is_file():  # a set written before it had one
            write_oracle_index(root, pd.read_csv(root / METADATA_FILE))
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    write_synthetic(staging, scale, seed, sizes, outlier_fraction, target=target)
    (staging / DONE_FILE).write_text(json.dumps(params))
    try:
        staging.rename(root)
    except OSError:  # another process finished first; its copy is identical
        shutil.rmtree(staging, ignore_errors=True)
        if not done.is_file():
            raise
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.data.synthetic",
        description="Write a synthetic rare-species data set in the real on-disk format.",
    )
    parser.add_argument("--out", type=Path, required=True, help="image root to create")
    parser.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default="small",
        help="full: 202 families, 11,983 images; small: 24 families; tiny: 6",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="range of the longer image side in pixels",
    )
    parser.add_argument("--outlier-fraction", type=float, default=0.15)
    parser.add_argument("--workers", type=int, help="processes (default: one per core, up to 16)")
    parser.add_argument(
        "--target",
        choices=RANKS,
        default="family",
        help="the data.target it is for: species gets species that look different "
        "(and whole species at tiny); any other rank the family-level set",
    )
    args = parser.parse_args(argv)
    if (args.out / METADATA_FILE).exists():
        parser.exit(
            2, f"error: {args.out} already holds a {METADATA_FILE}; choose another --out.\n"
        )
    write_synthetic(
        args.out,
        args.scale,
        args.seed,
        args.size,
        args.outlier_fraction,
        workers=args.workers,
        target=args.target,
    )
    rows = pd.read_csv(args.out / METADATA_FILE)
    print(
        f"Wrote {len(rows):,} images of {rows['family'].nunique()} families "
        f"({rows[SPECIES_ID].nunique()} species) to {args.out}"
    )


if __name__ == "__main__":
    main()
