"""The baselines' costs: images/s of an open_clip image tower (random weights, random
pixels at the tower's own size), and the wall time of the few-shot protocol from cached
embeddings (random ones of the real shape: 400 species x 30 images, D = 512, split 24 / 3 / 3
per species as the stratified 80/10/10 split does)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.benchmarks.measure import timed
from src.evaluation.embeddings import read_embeddings, store_embeddings
from src.evaluation.fewshot import fewshot_repeats
from src.models.clip import ClipSpec, image_data_config, load_clip
from src.models.zeroshot import autocast_dtype


def bench_baselines(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [embedding_throughput(args), fewshot_time(args)]


@torch.no_grad()
def embedding_throughput(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    spec = ClipSpec(args.clip_model, None, config_dir=args.clip_config_dir)
    torch.manual_seed(0)
    model, _, _ = load_clip(spec, device)
    size = image_data_config(model)["image_size"]
    images = torch.randn(args.images, 3, size, size)
    dtype = autocast_dtype(device)

    def embed(batches) -> int:
        for batch in batches:
            with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
                model.encode_image(batch.to(device, non_blocking=True))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return sum(len(batch) for batch in batches)

    batches = list(images.split(args.batch_size))
    embed(batches[:1])  # warm-up (allocation, kernel choice)
    return {
        "bench": "clip_embedding",
        "model": f"{args.clip_model} (random weights)",
        "device": device,
        "precision": "fp32" if dtype is None else str(dtype).removeprefix("torch."),
        "image_size": size,
        "batch_size": args.batch_size,
        "images": args.images,
        "images_per_s": round(timed(lambda: embed(batches)), 1),
    }


def fewshot_time(args: argparse.Namespace) -> dict[str, Any]:
    classes, per_class, dim = args.classes, args.per_class, args.dim
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), per_class)
    position = np.tile(np.arange(per_class), classes)
    train_rows = position < round(0.8 * per_class)
    test_rows = position >= per_class - round(0.1 * per_class)
    embeddings = rng.standard_normal((len(labels), dim)).astype(np.float32)
    files = np.array([f"image_{i}.jpg" for i in range(len(labels))])
    with tempfile.TemporaryDirectory() as folder:
        cache = {name: Path(folder) / f"{name}.npz" for name in ("train", "test")}
        for name, rows in (("train", train_rows), ("test", test_rows)):
            store_embeddings(cache[name], embeddings[rows], files[rows].tolist())
        start = time.perf_counter()
        train = read_embeddings(cache["train"], files[train_rows].tolist())
        test = read_embeddings(cache["test"], files[test_rows].tolist())
        loaded = time.perf_counter()
        rows, _ = fewshot_repeats(
            (train, labels[train_rows]),
            {"test": (test, labels[test_rows])},
            classes,
            args.shots,
            args.repeats,
            seed=0,
        )
        done = time.perf_counter()
    return {
        "bench": "fewshot",
        "classes": classes,
        "train_images": int(train_rows.sum()),
        "test_images": int(test_rows.sum()),
        "dim": dim,
        "shots": " ".join(map(str, args.shots)),
        "repeats": args.repeats,
        "load_s": round(loaded - start, 3),
        "fewshot_s": round(done - loaded, 2),
        "per_repeat_s": round((done - loaded) / len(rows), 3),
        "wall_s": round(done - start, 2),
    }
