"""Benchmarks that measure and write numbers (they assert nothing):

    python -m src.bench data      [--root DIR] [--images 200] [--image-size 224]
    python -m src.bench model     [--backbones convnext_base tf_efficientnetv2_b0] [--device cuda]
    python -m src.bench features  [--backbone resnet50] [--images 256]
    python -m src.bench epoch     [--root DIR] [--model convnext] [--augment-on gpu cpu]
    python -m src.bench baselines [--clip-model ViT-B-16] [--classes 400] [--shots 1 5]
    python -m src.bench bank      [--backbone resnet18] [--epochs 13] [--views 0 4 8]
    python -m src.bench overhead  [--backbone tf_efficientnetv2_b0] [--batch-size 128]
    python -m src.bench study     [--root DIR] [--overrides hparams_search=... ...]

Each writes ``bench.json`` and ``bench.md`` (with the machine it ran on) into ``--out``.
Ratios are the headline: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from src.benchmarks.bank import bench_bank
from src.benchmarks.baselines import bench_baselines
from src.benchmarks.data import bench_data
from src.benchmarks.epoch import bench_epoch
from src.benchmarks.features import bench_features
from src.benchmarks.measure import machine, to_markdown
from src.benchmarks.model import bench_model
from src.benchmarks.overhead import bench_overhead
from src.benchmarks.study import bench_study
from src.runs.files import OutputError, write_text

BENCHES = {
    "data": bench_data,
    "model": bench_model,
    "features": bench_features,
    "epoch": bench_epoch,
    "baselines": bench_baselines,
    "bank": bench_bank,
    "study": bench_study,
    "overhead": bench_overhead,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=list(BENCHES), nargs="+")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"))
    parser.add_argument(
        "--root", type=Path, help="an image root (default: synthetic full-size; study: digits)"
    )
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
        "--overrides",
        nargs="*",
        default=[],
        help="more Hydra overrides of the epoch and bank benches; the whole study of the "
        "study bench (default: the digits study of 8 trials)",
    )
    bank = parser.add_argument_group("bank")
    bank.add_argument("--epochs", type=int, default=13, help="epochs of both paths")
    bank.add_argument(
        "--views", type=int, nargs="+", default=[0, 8], help="banked views; 0: from images"
    )
    baselines = parser.add_argument_group("baselines")
    baselines.add_argument(
        "--clip-model", default="ViT-B-16", help="open_clip architecture (random weights)"
    )
    baselines.add_argument("--clip-config-dir", help="a folder of extra open_clip configs")
    baselines.add_argument("--classes", type=int, default=400, help="few-shot classes")
    baselines.add_argument("--per-class", type=int, default=30, help="images per class")
    baselines.add_argument("--dim", type=int, default=512, help="embedding size")
    baselines.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    baselines.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = [row for what in args.what for row in BENCHES[what](args)]
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
