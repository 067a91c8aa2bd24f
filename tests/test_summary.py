"""The sweep summary (summary.csv, summary.md) of a grid with ``-m``, and ``src.report``
built on it: every run with its error, and empty or broken json files survived."""

import json
from pathlib import Path

import pandas as pd
import yaml

from tests.helpers import run_module
from tests.studies import run


def test_grid_summary_lists_every_run_and_the_errors(tmp_path):
    sweep = tmp_path / "grid"
    result = run(
        tmp_path,
        "model.optimizer.lr=0.001,0.003",
        "data.preprocess=original,sepia",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode != 0  # Hydra reports that part of the sweep failed
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4
    assert sorted(summary["status"]) == ["completed", "completed", "failed", "failed"]
    failed = summary[summary["status"] == "failed"]
    assert failed["error"].str.contains("data.preprocess='sepia' is not one of").all()
    assert failed["overrides"].str.contains("data.preprocess=sepia").all()
    completed = summary[summary["status"] == "completed"]
    assert completed["test/f1_macro"].notna().all()
    assert list(summary["best val/f1_macro"].dropna()) == sorted(
        summary["best val/f1_macro"].dropna(), reverse=True
    )
    table = (sweep / "summary.md").read_text()
    assert table.startswith("Trial-epochs spent: 2 of 4 (4 runs x 1 epoch)")  # failed: 0
    assert [line.startswith("| ") for line in table.splitlines()].count(True) == 5
    assert "sepia" in table
    again = run_module(tmp_path, "src.report", str(sweep), timeout=120)
    assert again.returncode == 0 and "4 runs" in again.stdout


def fake_run(sweep: Path, name: str, override: str, files: dict[str, str]) -> Path:
    """A run folder as a sweep leaves it, with the given files (possibly empty or broken)."""
    run_dir = sweep / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(f"- {override}\n")
    for file_name, content in files.items():
        (run_dir / file_name).write_text(content)
    return run_dir


def test_summary_survives_empty_and_broken_json_files(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from src.sweeps.summary import RunStatusCallback

    sweep = tmp_path / "sweep"
    fake_run(
        sweep,
        "0",
        "model.optimizer.lr=0.001",
        {
            "run_status.json": '{"status": "completed", "score": 0.5}',
            "test_metrics.json": '{"test/f1_macro": 0.4}',
        },
    )
    # killed while writing (before files were written whole): an empty status, broken metrics
    fake_run(
        sweep,
        "1",
        "model.optimizer.lr=0.003",
        {"run_status.json": "", "test_metrics.json": '{"test/f1'},
    )
    result = run_module(tmp_path, "src.report", str(sweep), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 runs" in result.stdout and "model.optimizer.lr=0.003" in result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.count("Ignoring") == 2 and "run_status.json" in result.stderr
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary["status"].str.startswith("unknown").sum() == 1

    # a job whose fit summary is broken still records its status
    run_dir = fake_run(sweep, "2", "model.optimizer.lr=0.01", {"fit_summary.json": "{"})
    config = OmegaConf.create(
        {"hydra": {"runtime": {"output_dir": str(run_dir)}, "mode": "RUN"}, "monitor": "val/acc"}
    )
    done = JobReturn(status=JobStatus.COMPLETED, _return_value=0.25)
    RunStatusCallback().on_job_end(config, done)
    status = yaml.safe_load((run_dir / "run_status.json").read_text())
    assert status["status"] == "completed" and status["score"] == 0.25


def test_a_loss_monitor_is_summarised_lowest_first_under_its_own_name(tmp_path):
    """The original's presets follow val/loss (mode min): the summary says so and puts the
    lowest loss first, whatever monitor src.report is given by default."""
    from src.sweeps.summary import summarize

    sweep = tmp_path / "sweep"
    for name, loss in (("0", 2.2), ("1", 1.2), ("2", 1.8)):
        status = {"status": "completed", "score": loss, "monitor": "val/loss"}
        status["monitor_mode"] = "min"
        fake_run(sweep, name, f"seed={name}", {"run_status.json": json.dumps(status)})
    frame = summarize(sweep)
    assert list(frame["best val/loss"]) == [1.2, 1.8, 2.2]
    assert "best val/f1_macro" not in frame
    report = run_module(tmp_path, "src.report", str(sweep), timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    assert list(pd.read_csv(sweep / "summary.csv")["best val/loss"]) == [1.2, 1.8, 2.2]


def test_a_trial_killed_before_hydra_wrote_its_folder_keeps_its_row(tmp_path):
    """A worker killed between creating trial_1 and Hydra's .hydra record: the study's note
    on the lost trial is its only file, and the summary still lists it, without hiding what
    tells the other runs apart."""
    from src.sweeps.summary import summarize

    sweep = tmp_path / "study"
    fake_run(sweep, "trial_0", "model.optimizer.lr=0.001", {"run_status.json": "{}"})
    fake_run(sweep, "trial_2", "model.optimizer.lr=0.003", {"run_status.json": "{}"})
    lost = sweep / "trial_1"
    lost.mkdir()
    (lost / "run_status.json").write_text('{"status": "failed", "error": "its worker died"}')
    (sweep / "trial_3").mkdir()  # nothing in it: not a run
    frame = summarize(sweep).set_index("run")
    assert list(frame.index) == ["trial_0", "trial_1", "trial_2"]
    assert "worker died" in frame.loc["trial_1", "error"]
    assert frame.loc["trial_2", "overrides"] == "model.optimizer.lr=0.003"
