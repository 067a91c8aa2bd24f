"""Decode-once image cache: every image decoded and resized once into a memory-mapped file.

    python -m src.data.cache data=rarespecies data.image_size=224 [model=convnext]

Training with ``data.cache=true`` then reads uint8 pixels from ``images.npy`` instead of
decoding JPEGs every epoch. The cache stores exactly what the JPEG path feeds the
pre-processing (the same decode and resize), so both paths give the same tensors. A
fingerprint of the source files (path, size, mtime) and of the resize settings is kept
beside it; a stale cache is detected and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from src.data.images import DEFAULT_MAX_PIXELS, BadImageError, load_rgb
from src.data.transforms import ImagePipeline

log = logging.getLogger(__name__)
IMAGES_FILE, INDEX_FILE, FINGERPRINT_FILE = "images.npy", "index.csv", "fingerprint.json"


@dataclass(frozen=True)
class CacheSpec:
    """What the cached pixels depend on."""

    image_size: int
    interpolation: str = "bilinear"
    fast_decode: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS

    def folder_name(self) -> str:
        decode = "draft" if self.fast_decode else "full"
        return f"decoded_{self.image_size}px_{self.interpolation}_{decode}"


def fingerprint(root: Path, file_paths: Sequence[str], spec: CacheSpec) -> str:
    digest = hashlib.sha256(json.dumps(spec.__dict__, sort_keys=True).encode())
    for rel in file_paths:
        try:
            stat = (root / rel).stat()
            digest.update(f"{rel}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{rel}:missing\n".encode())
    return digest.hexdigest()


def _decode(args: tuple[str, CacheSpec]) -> tuple[np.ndarray | None, str]:
    path, spec = args
    try:
        array = load_rgb(path, spec.max_pixels, spec.image_size if spec.fast_decode else None)
    except BadImageError as err:
        return None, err.reason
    return _resizer(spec.image_size, spec.interpolation).resize(array), ""


@lru_cache(maxsize=4)
def _resizer(image_size: int, interpolation: str) -> ImagePipeline:
    """One pipeline per worker process and setting, not one per image."""
    return ImagePipeline(image_size=image_size, interpolation=interpolation)


class DecodedCache:
    """Read side: ``cache[file_path]`` -> ``(S, S, 3)`` uint8 array from the memory map."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        index = pd.read_csv(folder / INDEX_FILE, keep_default_na=False)
        self.rows = dict(zip(index["file_path"], index["row"]))
        self.problems = dict(zip(index["file_path"], index["problem"]))
        self._images: np.ndarray | None = None  # opened lazily, once per worker process

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.folder / IMAGES_FILE, mmap_mode="r")
        return self._images

    def __contains__(self, file_path: str) -> bool:
        return file_path in self.rows and not self.problems[file_path]

    def __getitem__(self, file_path: str) -> np.ndarray:
        if self.problems.get(file_path):
            raise BadImageError(file_path, self.problems[file_path])
        return np.array(self.images[self.rows[file_path]])  # a writable copy

    def __getstate__(self) -> dict:  # workers open their own memory map
        return {**self.__dict__, "_images": None}


def build_cache(
    root: Path,
    file_paths: Sequence[str],
    spec: CacheSpec,
    folder: Path,
    workers: int = 2,
    progress: bool = True,
) -> DecodedCache:
    """Decode and resize every image into ``folder`` (written to a temporary folder first)."""
    staging = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    size = spec.image_size
    images = np.lib.format.open_memmap(
        staging / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=(len(file_paths), size, size, 3)
    )
    problems = []
    jobs = [(str(root / rel), spec) for rel in file_paths]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(_decode, jobs, chunksize=16)
        for row, (array, problem) in enumerate(
            tqdm(results, total=len(jobs), desc="decoding images", disable=not progress)
        ):
            if array is not None:
                images[row] = array
            problems.append(problem)
    images.flush()
    del images
    pd.DataFrame(
        {"file_path": list(file_paths), "row": range(len(file_paths)), "problem": problems}
    ).to_csv(staging / INDEX_FILE, index=False)
    (staging / FINGERPRINT_FILE).write_text(fingerprint(root, file_paths, spec))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return DecodedCache(folder)


def ensure_cache(
    root: Path,
    file_paths: Sequence[str],
    spec: CacheSpec,
    cache_dir: Path | None = None,
    workers: int = 2,
) -> DecodedCache:
    """The cache for these files and settings; built, or rebuilt when stale."""
    folder = (cache_dir or root / ".decoded_cache") / spec.folder_name()
    expected = fingerprint(root, file_paths, spec)
    stamp = folder / FINGERPRINT_FILE
    if stamp.is_file() and stamp.read_text() == expected:
        return DecodedCache(folder)
    if stamp.is_file():
        log.info("The image cache in %s is stale (files or settings changed): rebuilding.", folder)
    return build_cache(root, file_paths, spec, folder, workers)


def main() -> None:
    import hydra
    from hydra.utils import instantiate
    from omegaconf import DictConfig

    from src.runs.cli import register_resolvers, run_cli

    register_resolvers()

    def build(cfg: DictConfig) -> None:
        datamodule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.load_index()
        if cfg.get("model") is not None:  # the model decides the interpolation
            model = instantiate(cfg.model, class_names=datamodule.class_names, _recursive_=False)
            datamodule.use_data_config(model.data_config)
        cache = datamodule.decoded_cache(build=True)
        print(f"Cache of {len(cache.rows):,} images ready in {cache.folder}")

    hydra.main(version_base="1.3", config_path="../../conf", config_name="cache")(
        lambda cfg: run_cli(build, cfg)
    )()


if __name__ == "__main__":
    main()
