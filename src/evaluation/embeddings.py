"""Image embeddings of an open_clip image tower, computed once and reused.

Embeddings are computed with open_clip's own preprocessing (:class:`ClipImages`) and stored
raw (float32, not normalised) in ``<cache dir>/<key>.npz``, written whole. The key is a hash
of what they depend on: the model (architecture, weights; the seed when the weights are
random), the preprocessing (image size, resize, mean, std), the precision, and the files
(relative path, size and modification time, in order). Any change computes them again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.images import DEFAULT_MAX_PIXELS
from src.errors import UserFacingError
from src.models.clip import ClipSpec, resolve_model_name
from src.models.zeroshot import autocast_dtype, encode_images
from src.runs.files import OutputError, write_with

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # bump when the way embeddings are computed changes


class UnreadableImagesError(UserFacingError, RuntimeError):
    """Images that were readable when the data module checked them no longer are."""


def random_init(spec: ClipSpec) -> bool:
    """No weights anywhere: open_clip initialises the model from the random generator."""
    if spec.weights:
        return False
    return spec.pretrained is False or (
        not spec.pretrained and not spec.model.startswith("hf-hub:")
    )


def model_identity(spec: ClipSpec, seed: int | None = None) -> dict[str, Any]:
    """What a model's embeddings depend on: name and weights, the architecture's config (a
    changed config file changes the model), and the seed of randomly initialised weights."""
    import open_clip

    identity: dict[str, Any] = dict(spec.identity())
    identity["architecture"] = open_clip.get_model_config(
        resolve_model_name(spec.model, spec.pretrained)
    )
    if random_init(spec):
        identity["random_init_seed"] = seed
    return identity


def file_fingerprint(root: Path, file_paths: Sequence[str]) -> list[list[Any]]:
    """``[path, size, mtime_ns]`` per file: a replaced image changes the key."""
    fingerprint = []
    for path in file_paths:
        try:
            stat = os.stat(root / path)
            fingerprint.append([path, stat.st_size, stat.st_mtime_ns])
        except OSError:
            fingerprint.append([path, None, None])
    return fingerprint


def embedding_key(
    identity: dict[str, Any],
    preprocess: Any,
    precision: str,
    root: Path,
    file_paths: Sequence[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> str:
    payload = json.dumps(
        {
            "version": CACHE_VERSION,
            "model": identity,
            "preprocess": repr(preprocess),
            "precision": precision,
            "max_pixels": max_pixels,
            "files": file_fingerprint(root, file_paths),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@torch.no_grad()
def embed_images(
    model,
    preprocess,
    root: Path,
    file_paths: Sequence[str],
    batch_size: int = 64,
    num_workers: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str = "cpu",
) -> np.ndarray:
    """``(N, D)`` float32 image embeddings (``model.encode_image``), in the order of the files."""
    parts, reasons = encode_images(
        model, preprocess, root, file_paths, batch_size, num_workers, max_pixels, device
    )
    problems = [(path, why) for path, why in zip(file_paths, reasons) if why]
    if problems:
        examples = "; ".join(f"{path} ({why})" for path, why in problems[:3])
        raise UnreadableImagesError(
            f"{len(problems)} image(s) under {root} could not be read although they were "
            f"checked before (changed during the run?), e.g. {examples}: run again."
        )
    return parts.numpy().astype(np.float32)


class ImageEmbeddings:
    """The embeddings of any list of files under ``root`` for one loaded model, cached in
    ``cache_dir`` (None: not cached)."""

    def __init__(
        self,
        model,
        preprocess,
        identity: dict[str, Any],
        root: str | Path,
        cache_dir: str | Path | None,
        batch_size: int = 64,
        num_workers: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        device: str = "cpu",
    ) -> None:
        self.model, self.preprocess, self.identity = model, preprocess, identity
        self.root = Path(root)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size, self.num_workers = batch_size, num_workers
        self.max_pixels, self.device = max_pixels, device
        dtype = autocast_dtype(device)
        self.precision = "fp32" if dtype is None else str(dtype).removeprefix("torch.")

    def key(self, file_paths: Sequence[str]) -> str:
        return embedding_key(
            self.identity, self.preprocess, self.precision, self.root, file_paths, self.max_pixels
        )

    def path(self, file_paths: Sequence[str]) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{self.key(file_paths)}.npz"

    def __call__(self, file_paths: Sequence[str], what: str = "images") -> np.ndarray:
        file_paths = list(file_paths)
        path = self.path(file_paths)
        cached = read_embeddings(path, file_paths) if path else None
        if cached is not None:
            log.info("Reusing the embeddings of %d %s (%s).", len(file_paths), what, path)
            return cached
        log.info("Embedding %d %s.", len(file_paths), what)
        embeddings = embed_images(
            self.model,
            self.preprocess,
            self.root,
            file_paths,
            self.batch_size,
            self.num_workers,
            self.max_pixels,
            self.device,
        )
        if path is not None:
            store_embeddings(path, embeddings, file_paths)
        return embeddings


def read_embeddings(path: Path, file_paths: Sequence[str]) -> np.ndarray | None:
    """The cached embeddings of exactly ``file_paths``; None (with a warning) if unusable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            embeddings, files = stored["embeddings"], stored["files"]
    except (OSError, ValueError, KeyError, EOFError) as err:
        log.warning("Ignoring the embedding cache %s (%s); computing again.", path, err)
        return None
    if files.tolist() != list(file_paths) or len(embeddings) != len(file_paths):
        log.warning("Ignoring the embedding cache %s: it holds other files.", path)
        return None
    return embeddings.astype(np.float32, copy=False)


def store_embeddings(path: Path, embeddings: np.ndarray, file_paths: Sequence[str]) -> None:
    """Written whole; a folder that cannot take it costs a warning, not the run."""
    files = np.asarray(list(file_paths), dtype=str)
    try:
        write_with(path, lambda p: np.savez(p, embeddings=embeddings, files=files))
    except OutputError as err:
        log.warning("Embeddings not cached (%s); set embeddings_dir=DIR to cache them.", err)
