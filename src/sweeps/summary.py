"""One table of all runs of a sweep, failed ones included, sorted by validation macro F1."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from src.models.metrics import MONITOR, TABLE_KEYS
from src.runs.cli import user_facing_cause
from src.runs.files import read_json, write_csv, write_json, write_text

STATUS_FILE = "run_status.json"
FIT_SUMMARY_FILE = "fit_summary.json"  # written by src.train
SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"


def job_status(job_return: JobReturn) -> dict[str, Any]:
    """completed / pruned / failed, the score the task returned, the error if any."""
    if job_return.status == JobStatus.COMPLETED:
        return {"status": "completed", "score": job_return._return_value, "error": ""}
    error = job_return._return_value
    pruned = type(error).__name__ == "TrialPruned"
    shown = user_facing_cause(error) or error  # the one-line message, not Hydra's wrapper
    text = "" if pruned else "".join(traceback.format_exception_only(type(shown), shown)).strip()
    return {"status": "pruned" if pruned else "failed", "score": None, "error": text}


def read_run(run_dir: Path) -> dict[str, Any]:
    """One row: overrides, status, best validation score and test metrics of a run folder."""
    row: dict[str, Any] = {"run": run_dir.name}
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        row["overrides"] = " ".join(o for o in overrides if not o.startswith("hparams_search."))
    status = read_json(run_dir / STATUS_FILE, {}, expect=dict)
    row["status"] = status.get("status", "unknown (no run_status.json: still running or killed)")
    row["val_score"] = status.get("score")
    row["monitor"], row["monitor_mode"] = status.get("monitor"), status.get("monitor_mode")
    row["epochs"] = status.get("epochs")
    row["max_epochs"] = status.get("max_epochs")
    row["planned"] = status.get("planned")
    row["stopped"] = status.get("stopped", row["status"] if row["status"] == "failed" else "")
    row["error"] = status.get("error", "")
    metrics = read_json(run_dir / "test_metrics.json", {}, expect=dict)
    row.update({key: metrics.get(key) for key in TABLE_KEYS})
    return row


def run_dirs(sweep_dir: Path) -> list[Path]:
    """Run folders: Hydra's record, or only a status (a worker killed before Hydra wrote)."""
    return sorted(
        (p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir() or (p / STATUS_FILE).is_file()),
        key=lambda p: (len(p.name), p.name),
    )


def epoch_budget(frame: pd.DataFrame, planned: int | None = None) -> dict[str, Any]:
    """Trial-epochs spent against the most the sweep could spend (``planned`` runs, or the
    study's ``n_trials`` its runs recorded, at least the runs there are, each for its
    ``max_epochs``): what pruning, early stopping and skipped repeats saved."""
    epochs = pd.to_numeric(frame.get("epochs", pd.Series(dtype=float)), errors="coerce")
    longest = pd.to_numeric(frame.get("max_epochs", pd.Series(dtype=float)), errors="coerce")
    recorded = pd.to_numeric(frame.get("planned", pd.Series(dtype=float)), errors="coerce")
    runs = max(planned or 0, int(recorded.max()) if recorded.notna().any() else 0, len(frame))
    spent = int(epochs.fillna(0).sum())
    most = int(runs * longest.max()) if longest.notna().any() else None
    return {
        "runs": runs,
        "epochs_spent": spent,
        "epochs_max": most,
        "saved": round(1 - spent / most, 4) if most else None,
    }


def budget_line(budget: dict[str, Any]) -> str:
    if not budget["epochs_max"]:
        return f"Trial-epochs spent: {budget['epochs_spent']}.\n"
    each = budget["epochs_max"] // budget["runs"]
    return (
        f"Trial-epochs spent: {budget['epochs_spent']} of {budget['epochs_max']} "
        f"({budget['runs']} runs x {each} epoch{'' if each == 1 else 's'}): "
        f"{budget['saved']:.0%} saved (pruning, early stopping, repeats not run).\n"
    )


def summarize(
    sweep_dir: str | Path, monitor: str | None = None, planned: int | None = None
) -> pd.DataFrame:
    """Write summary.csv and summary.md in ``sweep_dir``; best first, failures last.

    The score is the metric the runs followed (their ``run_status.json``; ``monitor``
    when they recorded none), best first in the direction they followed (a loss: lowest).
    summary.md opens with the trial-epochs spent of the most ``planned`` runs could spend
    (:func:`epoch_budget`).
    """
    sweep_dir = Path(sweep_dir)
    rows = [read_run(d) for d in run_dirs(sweep_dir)]
    recorded = [row.pop("monitor") for row in rows]
    modes = [row.pop("monitor_mode") for row in rows]
    monitor = next((m for m in recorded if m), None) or monitor or MONITOR
    lowest_first = next((m for m in modes if m), "max") == "min"
    known = [set(r["overrides"].split()) for r in rows if "overrides" in r]
    shared = set.intersection(*known) if known else set()
    for row in rows:  # what tells the runs apart; the shared part stays in .hydra/overrides.yaml
        row["overrides"] = " ".join(o for o in row.get("overrides", "").split() if o not in shared)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["run", "overrides", "status", "val_score", "error"])
    budget = epoch_budget(frame, planned)
    frame = frame.rename(columns={"val_score": f"best {monitor}"})
    frame = frame.sort_values(
        f"best {monitor}", ascending=lowest_first, na_position="last", kind="stable"
    )
    write_csv(frame, sweep_dir / SUMMARY_CSV)
    table = to_markdown(frame.drop(columns=["planned"], errors="ignore"))  # in the first line
    write_text(sweep_dir / SUMMARY_MD, f"{budget_line(budget)}\n{table}")
    frame.attrs["budget"] = budget
    return frame


def to_markdown(frame: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines) + "\n"


class RunStatusCallback(Callback):
    """Hydra callback: every run records its status; a multirun refreshes its summary.

    The summary is rewritten after each job (not only at the end), so it is there even
    when a job fails and Hydra stops the sweep, or when the sweep is killed.
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        output_dir = Path(config.hydra.runtime.output_dir)
        status = job_status(job_return)
        status["monitor"] = config.get("monitor")
        status["monitor_mode"] = config.get("monitor_mode")
        status["planned"] = OmegaConf.select(config, "hparams_search.n_trials")
        fit = read_json(output_dir / FIT_SUMMARY_FILE, None, expect=dict)
        if fit is not None:  # pruned runs: the best score before they were stopped
            status["epochs"] = fit.get("epochs_run")
            status["max_epochs"] = fit.get("max_epochs")
            status["stopped"] = fit.get("stopped", "")
            if status["score"] is None and status["status"] == "pruned":
                status["score"] = fit.get("best_score")
        write_json(output_dir / STATUS_FILE, status)
        if config.hydra.mode is not None and str(config.hydra.mode).endswith("MULTIRUN"):
            summarize(config.hydra.sweep.dir, config.get("monitor"))
