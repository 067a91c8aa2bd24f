"""One table of results across run folders: trained runs (``src.train``), re-tested ones
(``src.evaluate``) and baselines (``src.baselines``), each row saying what was measured
(method, model, target rank, data), where, and its test metrics.

A baseline's result folder holds ``baseline.json``; a few-shot run holds one result folder
per k (``1shot/``, ``5shot/``) under its run folder, which has the config and ``run_info.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from src.evaluation.original import ROW_COLUMN
from src.evaluation.published import published_accuracy
from src.models.metrics import TABLE_KEYS
from src.runs.files import read_json
from src.runs.provenance import RUN_INFO_FILE
from src.sweeps.summary import STATUS_FILE

BASELINE_FILE = "baseline.json"
TEST_METRICS_FILE = "test_metrics.json"  # src.evaluation.writers (not imported: matplotlib)
PUBLISHED_COLUMN = "published acc % (species)"
TASK_LABELS = {"train": "trained", "evaluate": "trained (re-tested)"}
METHOD_LABELS = {"zeroshot": "zero-shot", "fewshot": "few-shot", "linear_probe": "linear probe"}


def is_result_folder(folder: Path) -> bool:
    return (folder / TEST_METRICS_FILE).is_file() or (folder / BASELINE_FILE).is_file()


def result_folders(folder: Path) -> list[Path]:
    """``folder`` itself when it holds results (or is a run that left none), else the result
    folders inside it (a few-shot run's ``<k>shot/``)."""
    if is_result_folder(folder):
        return [folder]
    inside = sorted(
        (p for p in folder.iterdir() if p.is_dir() and is_result_folder(p)),
        key=lambda p: (len(p.name), p.name),
    )
    if inside:
        return inside
    return [folder] if (folder / ".hydra").is_dir() else []


def run_home(folder: Path) -> Path:
    """The folder holding the run's config (``.hydra``) and ``run_info.json``."""
    return folder if (folder / ".hydra").is_dir() else folder.parent


def read_config(home: Path) -> dict[str, Any]:
    path = home / ".hydra" / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return config if isinstance(config, dict) else {}


def clip_label(
    name: str, pretrained: str | None, weights: str | None, random: bool | None = None
) -> str:
    if weights:
        return f"{name} ({Path(str(weights)).name})"
    if pretrained:
        return f"{name} ({pretrained})"
    if random or (random is None and not str(name).startswith("hf-hub:")):
        return f"{name} (random init)"
    return str(name)


def model_label(net: Mapping[str, Any] | None) -> str:
    """A network config (``model.net``) in a few words."""
    if not net:
        return ""
    if net.get("name"):
        return clip_label(net["name"], net.get("pretrained"), net.get("weights"))
    if net.get("backbone"):
        random = net.get("pretrained") is False and not net.get("weights")
        return f"{net['backbone']}{' (random init)' if random else ''}"
    target = str(net.get("_target_", ""))
    return "baseline CNN" if target.endswith("BaselineCNN") else target


def data_label(data: Mapping[str, Any] | None, image_size: int | None = None) -> str:
    """The data in a few words; ``image_size`` when the model's own preprocessing set it."""
    if not data:
        return ""
    synthetic = data.get("synthetic")
    label = f"synthetic {synthetic.get('scale', '')}".strip() if synthetic else "real images"
    if data.get("keep_index"):
        label += ", only animals"
    if image_size or data.get("image_size"):
        label += f", {image_size or data['image_size']} px"
    return label


def where_measured(run_info: Mapping[str, Any]) -> str:
    if not run_info:
        return ""
    if run_info.get("cuda"):
        return str(run_info["cuda"])
    cores = run_info.get("cores")
    return f"CPU, {cores} cores" if cores else "CPU"


def describe(folder: Path) -> dict[str, Any]:
    """What a result folder measured: method, model, target rank, data, where."""
    home = run_home(folder)
    config = read_config(home)
    info = read_json(folder / BASELINE_FILE, None, expect=dict)
    row: dict[str, Any] = {}
    if info:
        method, shots = info.get("method", ""), info.get("shots")
        row["method"] = METHOD_LABELS.get(method, method) + (f" {shots}" if shots else "")
        model, pretrained = info.get("model", ""), info.get("pretrained")
        row["model"] = clip_label(model, pretrained, info.get("weights"), info.get("random_init"))
        row["target"] = info.get("target", "")
        row[PUBLISHED_COLUMN] = published_accuracy(method, shots, model, pretrained, row["target"])
    else:
        task, method = config.get("task_name"), config.get("method")
        row["method"] = METHOD_LABELS.get(method) or TASK_LABELS.get(task, task or "")
        row["model"] = model_label((config.get("model") or {}).get("net"))
        if task == "evaluate" and config.get("ckpt_path"):
            row["model"] = f"checkpoint {config['ckpt_path']}"
        row["target"] = (config.get("data") or {}).get("target", "")
        row[ROW_COLUMN] = config.get(ROW_COLUMN) or ""
    row["data"] = data_label(config.get("data"), (info or {}).get("image_size"))
    row["where"] = where_measured(read_json(home / RUN_INFO_FILE, {}, expect=dict))
    return row


def metrics_row(folder: Path) -> dict[str, Any]:
    """Status (of the run) and test metrics (of the result folder)."""
    status = read_json(run_home(folder) / STATUS_FILE, {}, expect=dict)
    metrics = read_json(folder / TEST_METRICS_FILE, {}, expect=dict)
    row = {"status": status.get("status", "completed" if metrics else "no results")}
    row.update({key: metrics.get(key) for key in TABLE_KEYS})
    row["test/acc_std"] = metrics.get("test/acc_std")
    return row


def order_columns(frame: pd.DataFrame) -> pd.DataFrame:
    first = ["method", "model", "target", "data", "original", "test/acc", "test/acc_std"]
    first += [PUBLISHED_COLUMN, "test/acc (original)", "test/acc - original"]
    first += ["test/f1_macro", "test/f1_macro (original)", "test/f1_macro - original"]
    last = ["where", "status", "overrides", "error", "run"]
    columns = [c for c in first if c in frame] + [
        c for c in frame if c not in first and c not in last
    ]
    columns += [c for c in last if c in frame]
    frame = frame[columns]
    empty = [c for c in frame if frame[c].isna().all() or (frame[c].astype(str) == "").all()]
    return frame.drop(columns=[c for c in empty if c not in ("method", "run")])


def results_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=["method", "model", "target", "run"])
    return order_columns(frame)


def folder_rows(folder: Path) -> list[dict[str, Any]]:
    """One row per result folder in a run folder (see :func:`result_folders`)."""
    return [
        {**describe(result), **metrics_row(result), "run": str(result)}
        for result in result_folders(folder)
    ]


def sweep_rows(sweep_dir: Path, summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a sweep's summary (:func:`src.sweeps.summary.summarize`), each with what
    its run measured; a few-shot run gives one row per k."""
    rows = []
    for record in summary.to_dict("records"):
        run = sweep_dir / str(record.pop("run"))
        inside = result_folders(run)
        if inside and inside != [run]:
            overrides = {"overrides": record.get("overrides", "")}
            rows += [{**row, **overrides} for row in folder_rows(run)]
        else:
            rows.append({**describe(run), **record, "run": str(run)})
    return rows
