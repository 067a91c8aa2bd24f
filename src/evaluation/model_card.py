"""The model card (``README.md``) of an exported model folder, written from its run.

What it was trained on and how, its test metrics with where and how they were measured,
its calibration, what it is for and what it is not, and the data's licence, so a person
reading the hub page can judge it without the run folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from src.evaluation.results import where_measured
from src.runs.files import read_json

CARD_METRICS = (
    ("test/acc", "top-1 accuracy"),
    ("test/f1_macro", "macro F1"),
    ("test/top5_acc", "top-5 accuracy"),
    ("test/phylum_acc", "phylum accuracy (summed probabilities)"),
    ("test/ece", "expected calibration error, 15 bins (after the temperature)"),
    ("test/set_coverage", "prediction-set coverage"),
    ("test/set_size", "mean prediction-set size"),
    ("test/answer_acc", "answers that name the true class or its group"),
    ("test/answered_unknown", "share of test images answered `unknown`"),
)
REAL_DATA_LICENCE = (
    "Trained on the Rare Species data set (Imageomics Institute, DOI 10.57967/hf/1981): the "
    "compilation is CC0; its images, from the Encyclopedia of Life, carry their own licences "
    "from CC0 to CC BY-NC-SA (see the data set card); respect them when you use the model's "
    "outputs commercially."
)
SYNTHETIC_LICENCE = (
    "Trained on synthetic images (python -m src.data.synthetic: drawn stripes on the real "
    "index's rows), not on photos: this model is a demonstration of the pipeline and says "
    "nothing about real animals."
)


def front_matter(target: str, synthetic: bool) -> str:
    lines = [
        "---",
        "library_name: rare-species",
        "pipeline_tag: image-classification",
        "tags: [image-classification, biology, taxonomy, calibration]",
        "license: mit",
    ]
    if not synthetic:
        lines.append("datasets: [imageomics/rare-species]")
    return "\n".join([*lines, "---", ""])


def metrics_table(metrics: Mapping[str, float], where: str, classes: int, tested: int) -> str:
    rows = [
        f"| {label} | {metrics[key]:.4f} |"
        for key, label in CARD_METRICS
        if isinstance(metrics.get(key), int | float) and metrics[key] == metrics[key]
    ]
    if not rows:
        return "No test metrics were found beside the checkpoint.\n"
    chance = f"{1 / classes:.4f}" if classes else "?"
    sample = f"{tested:,} test images" if tested else "the test split"
    return (
        f"Measured on {sample} ({where}); guessing would score a top-1 accuracy of "
        f"{chance}. With few test images these numbers are rough.\n\n"
        "| metric | value |\n|---|---|\n" + "\n".join(rows) + "\n"
    )


def provenance(info: Mapping[str, Any]) -> str:
    """Which code and versions made the model (the run's ``run_info.json``)."""
    if not info:
        return "The run's provenance (run_info.json) was not found.\n"
    packages = info.get("packages") or {}
    versions = ", ".join(
        f"{k} {packages[k]}" for k in ("torch", "timm", "open_clip_torch") if k in packages
    )
    dirty = " (with uncommitted changes)" if info.get("git_dirty") else ""
    return (
        f"- code: the rare-species project at commit `{info.get('git_commit', '?')}`{dirty}\n"
        f"- command: `{info.get('command', '?')}`\n"
        f"- Python {info.get('python', '?')}; {versions}\n"
    )


def model_card(
    hparams: Mapping[str, Any],
    state: Mapping[str, Any],
    calibration: Mapping[str, Any] | None,
    run_config: Mapping[str, Any] | None,
    run_dir: Path | None,
) -> str:
    """The card's Markdown; ``run_dir`` (the training run's folder) gives its metrics."""
    run_config = run_config or {}
    data = run_config.get("data") or {}
    synthetic = "synthetic" in data
    target = state.get("target", "family")
    classes = hparams.get("class_names", [])
    net = hparams.get("net", {})
    metrics = read_json(run_dir / "test_metrics.json", {}, expect=dict) if run_dir else {}
    info = read_json(run_dir / "run_info.json", {}, expect=dict) if run_dir else {}
    where = where_measured(info) or "the training run's machine"
    split = {
        name: len(pd.read_csv(run_dir / "split" / f"{name}.csv"))
        for name in ("train", "val", "test")
        if run_dir and (run_dir / "split" / f"{name}.csv").is_file()
    }
    architecture = (
        net.get("backbone") or net.get("name") or str(net.get("_target_", "")).rsplit(".")[-1]
    )
    calibrated = (
        f"Calibrated on the val split: temperature {calibration['temperature']:.3f}, "
        f"split-conformal prediction sets at alpha {calibration['alpha']} (they hold the true "
        f"class at least {1 - calibration['alpha']:.0%} of the time for photos like the "
        "training source's), an out-of-scope cut on the "
        f"{calibration['out_of_scope']} score letting {calibration['keep']:.0%} of val through."
        if calibration
        else "Not calibrated: its probabilities are the raw softmax, and it gives no sets."
    )
    parts = [
        front_matter(target, synthetic),
        f"# Rare species classifier: {len(classes)} {target} classes ({architecture})",
        "",
        *([f"**{SYNTHETIC_LICENCE}**", ""] if synthetic else []),
        f"Classifies a photo of an animal into one of {len(classes)} taxa at rank **{target}**"
        " and says when it does not know: with `python -m src.predict ckpt_path=<this folder>"
        " inputs=<photos>` each answer is a class, a higher rank (order or phylum) when the "
        "prediction set spans several classes of one group, or `unknown`.",
        "",
        "## Training",
        "",
        f"- network: `{net.get('_target_', '')}` ({architecture}), "
        f"images {state.get('image_size', '?')} px, pre-processing "
        f"`{state.get('preprocess', 'original')}`",
        f"- data: {'synthetic set' if synthetic else data.get('root', 'the rare-species images')}"
        f", target `{target}`, imbalance `{data.get('imbalance', '?')}`",
        "- split (images): "
        + (", ".join(f"{k} {v:,}" for k, v in split.items()) if split else "see split/"),
        f"- seed {run_config.get('seed', '?')}; the whole config is in `config.json`",
        "",
        "## Results",
        "",
        metrics_table(metrics, where, len(classes), split.get("test", 0)),
        "## Provenance",
        "",
        provenance(info),
        "## Calibration",
        "",
        calibrated,
        "",
        "## Intended use and limits",
        "",
        "- For photos like the training images (Encyclopedia of Life pictures of the listed "
        "taxa); other sources (camera traps, phones) may be covered less often than promised.",
        "- It knows only its classes: an animal of another taxon gets the nearest of them, "
        "unless the out-of-scope cut or a spread-out prediction set catches it.",
        "- Not for decisions about a protected species without an expert looking at the photo.",
        "",
        "## Licence",
        "",
        "The code and weights: MIT. "
        + ("No real images were used." if synthetic else REAL_DATA_LICENCE),
        "",
    ]
    return "\n".join(parts)
