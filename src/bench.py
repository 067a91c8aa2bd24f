"""Benchmarks that measure and write numbers (they assert nothing):

    python -m src.bench data      [--root DIR] [--images 200] [--image-size 224]
    python -m src.bench model     [--backbones convnext_base tf_efficientnetv2_b0] [--device cuda]
    python -m src.bench features  [--backbone resnet50] [--images 256]
    python -m src.bench epoch     [--root DIR] [--model convnext] [--augment-on gpu cpu]

Each writes ``bench.json`` and ``bench.md`` (with the machine it ran on) into ``--out``.
Ratios are the headline: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset

from src.atomic import OutputError, write_text

# the original's oversampled ConvNeXt-Base run: 13 epochs of 48,480 training images
# (202 families x 240) and 1,198 validation images, 11,431 s on a laptop RTX 3060
ORIGINAL_EPOCHS, ORIGINAL_TRAIN, ORIGINAL_VAL, ORIGINAL_S = 13, 48_480, 1_198, 11_431
# peak dense bf16 tensor throughput, FLOP/s, for the share-of-peak column
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "RTX 3060": 51e12}


def machine() -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def timed(function: Callable[[], int], repeat: int = 1) -> float:
    """Items per second of ``function`` (which returns how many items it processed)."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        count = function()
        best = max(best, count / (time.perf_counter() - start))
    return best


# ---- (a) loaders -------------------------------------------------------------------------
class NaiveImages(Dataset):
    """The original's way: full PIL decode and PIL resize of every image, every epoch."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            image = image.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
            return torch.from_numpy(np.asarray(image)).permute(2, 0, 1)


def cached_synthetic(scale: str, sizes: list[int]) -> Path:
    """A synthetic data set in the cache folder (``RARE_SPECIES_CACHE``), written once."""
    from src.data.synthetic import ensure_synthetic
    from src.utils import synthetic_dir_name

    cache = Path(os.environ.get("RARE_SPECIES_CACHE", Path.home() / ".cache/rare_species"))
    return ensure_synthetic(cache / synthetic_dir_name(scale, 0, sizes), scale, sizes=sizes)


def bench_data(args: argparse.Namespace) -> list[dict[str, Any]]:
    from src.data.datamodule import RareSpeciesDataModule

    # full-size JPEGs, as the real data has
    root = args.root or cached_synthetic("tiny", [800, 1600])
    rows = []
    for workers in (1, 2):
        common = {
            "root": str(root),
            "image_size": args.image_size,
            "num_workers": workers,
            "batch_size": 32,
            "persistent_workers": False,
            "output_dir": tempfile.mkdtemp(),
        }
        jpeg = RareSpeciesDataModule(**common)
        cached = RareSpeciesDataModule(**common, cache=True)
        jpeg.setup("fit")
        cached.setup("fit")
        subset = list(range(min(args.images, len(jpeg.datasets["train"]))))
        paths = [Path(root) / p for p in jpeg.rows["train"]["file_path"].iloc[subset]]
        loaders = {
            "naive (PIL decode + resize)": DataLoader(
                NaiveImages(paths, args.image_size), batch_size=32, num_workers=workers
            ),
            "project JPEG path (draft + OpenCV)": DataLoader(
                torch.utils.data.Subset(jpeg.datasets["train"], subset),
                batch_size=32,
                num_workers=workers,
            ),
            "decoded cache": DataLoader(
                torch.utils.data.Subset(cached.datasets["train"], subset),
                batch_size=32,
                num_workers=workers,
            ),
        }
        speeds = {
            name: timed(
                lambda dl=dl: sum(len(b[0]) if isinstance(b, list) else len(b) for b in dl),
                repeat=2,
            )
            for name, dl in loaders.items()
        }
        for name, speed in speeds.items():
            rows.append(
                {
                    "bench": "data",
                    "loader": name,
                    "workers": workers,
                    "images_per_s": round(speed, 1),
                    "x_naive": round(speed / speeds["naive (PIL decode + resize)"], 2),
                }
            )
    return rows


# ---- (b) train steps -----------------------------------------------------------------------
def make_model(backbone: str, num_classes: int, freeze: str):
    from src.models.classifier import SpeciesClassifier

    names = [f"c{i}" for i in range(num_classes)]
    if backbone == "baseline":
        return SpeciesClassifier("src.models.baseline.BaselineCNN", names)
    return SpeciesClassifier(
        "src.models.timm_net.TimmNet",
        names,
        backbone=backbone,
        pretrained=False,
        freeze=freeze,
        optimizer={"name": "adamw", "lr": 1e-3},
    )


def forward_flops(model, image_size: int, device: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    model.eval()  # one image: BatchNorm cannot use batch statistics
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size, device=device))
    return float(counter.get_total_flops())


def plain_loop(model, batches: int, batch: torch.Tensor, labels: torch.Tensor, dtype) -> int:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(batches):
        with torch.autocast(batch.device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = torch.nn.functional.cross_entropy(model(batch).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if batch.is_cuda:
        torch.cuda.synchronize()
    return batches * len(batch)


class SameBatch:
    """The plain loop's very batch, already on the device, ``times`` times: a loader for
    Lightning whose cost is nil, so that only the framework differs between the loops."""

    def __init__(self, batch: torch.Tensor, labels: torch.Tensor, times: int) -> None:
        self.batch, self.labels, self.times = batch, labels, times

    def __len__(self) -> int:
        return self.times

    def __iter__(self):
        return iter([(self.batch, self.labels)] * self.times)


def lightning_loop(
    model, batches: int, batch: torch.Tensor, labels: torch.Tensor, precision: str, device: str
) -> float:
    """Images per second of Lightning's fit, timed from the first to the last train batch."""
    import pytorch_lightning as pl

    class Clock(pl.Callback):
        start = end = 0.0

        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 1:  # after one warm-up step
                if batch.is_cuda:
                    torch.cuda.synchronize()
                Clock.start = time.perf_counter()

        def on_train_end(self, trainer, *args):
            if batch.is_cuda:
                torch.cuda.synchronize()
            Clock.end = time.perf_counter()

    loader = SameBatch(batch, labels, batches + 1)
    model.configure_optimizers = lambda: torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3
    )
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=precision,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[Clock()],
    )
    trainer.fit(model, train_dataloaders=loader)
    return batches * len(batch) / (Clock.end - Clock.start)


def bench_model(args: argparse.Namespace) -> list[dict[str, Any]]:
    from src.utils import auto_precision

    device = args.device
    precision = args.precision or (auto_precision() if device == "cuda" else "32-true")
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision, torch.float32)
    # fixed-size batches: let cuDNN pick its fastest kernels (trainer=gpu does the same)
    torch.backends.cudnn.benchmark = device == "cuda"
    rows = []
    for freeze in args.freeze:
        for backbone in args.backbones:
            rows.append(train_step_row(backbone, freeze, args, precision, dtype))
            if device == "cuda":  # the last model's memory goes back before the next
                torch.cuda.empty_cache()
    return rows


def train_step_row(backbone: str, freeze: str, args, precision: str, dtype) -> dict[str, Any]:
    """Train-step images/s of one backbone, plain loop versus Lightning, on one batch."""
    device = args.device
    torch.manual_seed(0)
    model = make_model(backbone, 202, freeze).to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    batch = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, 202, (args.batch_size,), device=device)
    flops = forward_flops(model, args.image_size, device)
    plain_loop(model, 2, batch, labels, dtype)  # warm-up
    plain = lightning = 0.0
    for _ in range(args.repeat):  # alternated, best of each: both see the same noise
        plain = max(plain, timed(lambda: plain_loop(model, args.steps, batch, labels, dtype)))
        speed = lightning_loop(model, args.steps, batch, labels, precision, device)
        lightning = max(lightning, speed)
    row = {
        "bench": "model",
        "backbone": backbone,
        "freeze": freeze,
        "precision": precision,
        "batch": args.batch_size,
        "image_size": args.image_size,
        "plain_images_per_s": round(plain, 1),
        "lightning_images_per_s": round(lightning, 1),
        "lightning_overhead_pct": round(100 * (plain - lightning) / plain, 1),
        "forward_gflops_per_image": round(flops / 1e9, 2),
        "projected_13_epochs_48480_images_s": round(
            ORIGINAL_EPOCHS * ORIGINAL_TRAIN / lightning, 1
        ),
    }
    peak = next((v for k, v in PEAK_BF16.items() if k in machine().get("gpu", "")), None)
    # a frozen backbone runs forward only (x1); a trained one forward and backward (~x3)
    factor = {"all": 1.0, "none": 3.0}.get(freeze)
    if peak and factor and dtype != torch.float32:
        row["share_of_peak_pct"] = round(100 * lightning * flops * factor / peak, 1)
    return row


# ---- (c) feature cache ---------------------------------------------------------------------
def bench_features(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = args.device
    torch.manual_seed(0)
    model = make_model(args.backbone, 202, "all").to(device)
    images = torch.randn(args.images, 3, args.image_size, args.image_size)
    labels = torch.randint(0, 202, (args.images,))
    loader = DataLoader(TensorDataset(images, labels), batch_size=args.batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.net.head.parameters(), lr=1e-3)

    def epoch(forward: Callable[[torch.Tensor], torch.Tensor], data: DataLoader) -> int:
        model.train()
        for x, y in data:
            loss = torch.nn.functional.cross_entropy(forward(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return len(data.dataset)

    full = timed(lambda: epoch(model, loader))
    with torch.no_grad():
        model.eval()
        features = torch.cat(
            [model.net.forward_features(x.to(device)).cpu() for x in images.split(args.batch_size)]
        )
    feature_loader = DataLoader(
        TensorDataset(features, labels), batch_size=args.batch_size, shuffle=True
    )
    head = timed(lambda: epoch(model.net.head, feature_loader), repeat=3)
    return [
        {
            "bench": "features",
            "backbone": args.backbone,
            "images": args.images,
            "image_size": args.image_size,
            "full_forward_epoch_s": round(args.images / full, 3),
            "cached_features_epoch_s": round(args.images / head, 4),
            "speedup": round(head / full, 1),
        }
    ]


# ---- (d) one real epoch ------------------------------------------------------------------
def full_synthetic_root() -> Path:
    """Synthetic images for every row of the index (202 families), written once: with
    oversampling an epoch has the original's 48,480 training images."""
    return cached_synthetic("full", [224, 288])


def bench_epoch(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One epoch of ``python -m src.train`` (oversampled, from the decoded cache) per
    augmentation device, and the original's 13-epoch schedule projected from it."""
    root = args.root or full_synthetic_root()
    rows = []
    for augment_on in args.augment_on:
        run = Path(tempfile.mkdtemp(prefix="bench_epoch_"))
        overrides = [
            f"model={args.model}",
            "model.pretrained=false",  # the speed of random weights is the same
            "data=rarespecies",
            f"data.root={root}",
            f"data.image_size={args.image_size}",
            f"data.batch_size={args.batch_size}",
            f"data.num_workers={args.workers}",
            "data.imbalance=oversample",
            "data.cache=true",
            f"data.augment_on={augment_on}",
            f"trainer={'gpu' if args.device == 'cuda' else 'cpu'}",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "logger=none",
            "test=false",
            f"hydra.run.dir={run}",
            *args.overrides,
        ]
        subprocess.run(
            [sys.executable, "-m", "src.train", *overrides],
            cwd=Path(__file__).resolve().parents[1],
            check=True,
        )
        timing = json.loads((run / "timing.json").read_text())
        epoch = timing["epochs"][0]
        projected = ORIGINAL_EPOCHS * (
            ORIGINAL_TRAIN / epoch["train_images_per_s"]
            + epoch["val_s"] * ORIGINAL_VAL / max(1, epoch["val_images"])
            + epoch["other_s"]
        )
        rows.append(
            {
                "bench": "epoch",
                "model": " ".join([args.model, *args.overrides]),
                "augment_on": augment_on,
                "workers": args.workers,
                "batch": args.batch_size,
                "precision": timing["precision"],
                "train_images": epoch["train_images"],
                "train_s": round(epoch["train_s"], 1),
                "val_s": round(epoch["val_s"], 1),
                "train_images_per_s": round(epoch["train_images_per_s"], 1),
                "projected_13_epochs_s": round(projected, 1),
                "x_original": round(ORIGINAL_S / projected, 1),
            }
        )
        shutil.rmtree(run, ignore_errors=True)
    return rows


def to_markdown(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [f"Machine: {', '.join(f'{k} {v}' for k, v in info.items())}", ""]
    for bench in dict.fromkeys(r["bench"] for r in rows):
        part = [r for r in rows if r["bench"] == bench]
        keys = [k for k in part[0] if k != "bench"]
        lines += [f"### {bench}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in part]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=["data", "model", "features", "epoch"], nargs="+")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"))
    parser.add_argument("--root", type=Path, help="an image root (default: synthetic full-size)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed train steps per backbone")
    parser.add_argument(
        "--repeat", type=int, default=3, help="model bench: best of this many alternated runs"
    )
    parser.add_argument(
        "--backbones",
        nargs="+",
        default=["convnext_base.fb_in22k_ft_in1k", "tf_efficientnetv2_b0.in1k"],
    )
    parser.add_argument("--backbone", default="resnet50", help="backbone of the features bench")
    parser.add_argument(
        "--freeze",
        nargs="+",
        default=["all"],
        choices=["all", "partial", "none"],
        help="backbone freezing of the model bench (one row per value)",
    )
    parser.add_argument("--precision", help="default: bf16-mixed/16-mixed on CUDA, 32-true on CPU")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="convnext", help="model config of the epoch bench")
    parser.add_argument("--augment-on", nargs="+", default=["gpu", "cpu"], choices=["gpu", "cpu"])
    parser.add_argument(
        "--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="loader workers"
    )
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="more Hydra overrides of the epoch bench"
    )
    args = parser.parse_args(argv)
    benches = {
        "data": bench_data,
        "model": bench_model,
        "features": bench_features,
        "epoch": bench_epoch,
    }
    rows = [row for what in args.what for row in benches[what](args)]
    info = machine()
    payload = json.dumps({"machine": info, "results": rows}, indent=2)
    try:
        write_text(args.out / "bench.json", payload)
        write_text(args.out / "bench.md", to_markdown(rows, info))
    except OutputError as err:
        parser.exit(1, f"error: {err}\n")
    print(to_markdown(rows, info))


if __name__ == "__main__":
    main()
