"""Train steps: a plain PyTorch loop against the Lightning module, on the same batch."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from src.benchmarks.measure import ORIGINAL_EPOCHS, ORIGINAL_TRAIN, PEAK_BF16, machine, timed


def make_model(backbone: str, num_classes: int, freeze: str):
    """The classifier ``python -m src.train`` would build: the project's model config
    (``model=timm`` or ``model=baseline``), random weights."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from src.benchmarks.measure import CONF_DIR

    if backbone == "baseline":
        overrides = ["model=baseline"]
    else:
        overrides = ["model=timm", f"model.net.backbone={backbone}", "model.net.pretrained=false"]
        overrides.append(f"model.net.freeze={freeze}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    names = [f"c{i}" for i in range(num_classes)]
    return instantiate(cfg.model, class_names=names, class_weights=None, _recursive_=False)


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
    from src.runs.precision import auto_precision

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
