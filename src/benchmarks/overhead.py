"""Lightning's fixed cost per training step, and where it goes.

A frozen backbone's step is mostly the backbone's forward pass; when that pass is short (a
small backbone on a fast GPU), the framework's fixed cost per step shows. This bench makes
the step nearly free (the head alone, on cached features), so what remains is that fixed
cost: plain loop and Lightning side by side, and a profile of the Lightning step (cProfile,
the functions with the most own time per step).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from typing import Any

import torch

from src.benchmarks.model import lightning_loop, make_model, plain_loop


def head_only(args: argparse.Namespace):
    """The project's classifier on cached features: the head's step and nothing else."""
    torch.manual_seed(0)
    model = make_model(args.backbone, 202, "all").to(args.device)
    model.inputs_are_features = True
    width = next(m for m in model.net.head.modules() if isinstance(m, torch.nn.Linear)).in_features
    features = torch.randn(args.batch_size, width, device=args.device)
    labels = torch.randint(0, 202, (args.batch_size,), device=args.device)
    return model, features, labels


def profile_rows(profiler: cProfile.Profile, steps: int, top: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(profiler)
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return [
        {
            "bench": "overhead profile",
            "function": f"{func[2]} ({func[0].rsplit('site-packages/', 1)[-1]}:{func[1]})",
            "calls_per_step": round(calls / steps, 1),
            "own_us_per_step": round(1e6 * own / steps, 1),
            "with_callees_us_per_step": round(1e6 * cumulative / steps, 1),
        }
        for func, (_, calls, own, cumulative, _) in entries
    ]


def bench_overhead(args: argparse.Namespace) -> list[dict[str, Any]]:
    model, features, labels = head_only(args)
    steps = max(args.steps, 200)
    plain_loop(model, 5, features, labels, torch.float32)  # warm-up
    start = time.perf_counter()
    plain_loop(model, steps, features, labels, torch.float32)
    plain_us = 1e6 * (time.perf_counter() - start) / steps
    lightning_loop(model, 5, features, labels, "32-true", args.device)  # warm-up
    speed = lightning_loop(model, steps, features, labels, "32-true", args.device)
    lightning_us = 1e6 * len(features) / speed
    profiler = cProfile.Profile()
    profiler.enable()
    lightning_loop(model, steps, features, labels, "32-true", args.device)
    profiler.disable()
    summary = {
        "bench": "overhead",
        "backbone": f"{args.backbone} head on cached features",
        "batch": args.batch_size,
        "plain_us_per_step": round(plain_us, 1),
        "lightning_us_per_step": round(lightning_us, 1),
        "fixed_cost_us_per_step": round(lightning_us - plain_us, 1),
    }
    return [summary, *profile_rows(profiler, steps, top=15)]
