"""Same seed, same metrics; a run killed (SIGKILL) or stopped (SIGTERM) and resumed ends
where an uninterrupted one does, with the default loader workers, and keeps its history."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import ROOT, cache_env, run_module

# not debug=tiny: data.num_workers stays at its default (2 persistent workers), where
# resume must hold
ARGS = [
    "data.synthetic.scale=tiny",
    "data.synthetic.sizes=[40,56]",
    "data.image_size=32",
    "data.batch_size=8",
    "data.imbalance=oversample",
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "callbacks.early_stopping=null",
    "seed=3",
]


def command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "src.train", *ARGS, f"hydra.run.dir={run_dir}", *extra]


def train(tmp_path: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_module(tmp_path, "src.train", *ARGS, f"hydra.run.dir={run_dir}", *extra)


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "test_metrics.json").read_text())


def history(run_dir: Path) -> pd.DataFrame:
    """The logged rows, without the wall-clock columns."""
    table = pd.read_csv(run_dir / "csv" / "metrics.csv")
    return table[[c for c in table.columns if not c.startswith("time/")]]


def interrupt(tmp: Path, run_dir: Path, sig: signal.Signals) -> subprocess.Popen:
    """Start a run and send ``sig`` shortly after its first epoch's checkpoint appears."""
    process = subprocess.Popen(
        command(run_dir),
        cwd=ROOT,
        env=cache_env(tmp),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # into epoch 1
    process.send_signal(sig)
    process.wait(timeout=300)
    assert not (run_dir / "test_metrics.json").exists(), "the run ended before the signal"
    return process


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("resume")
    result = train(tmp, tmp / "a")
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, tmp / "a"


def test_same_seed_same_metrics(uninterrupted):
    tmp, first = uninterrupted
    result = train(tmp, tmp / "c")
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics(tmp / "c") == metrics(first)


def test_killed_run_resumes_to_the_same_result_and_keeps_its_history(uninterrupted):
    tmp, first = uninterrupted
    run_dir = tmp / "b"
    interrupt(tmp, run_dir, signal.SIGKILL)
    resumed = train(tmp, run_dir, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stdout + resumed.stderr
    assert metrics(run_dir) == metrics(first)
    pd.testing.assert_frame_equal(history(run_dir), history(first))
    timing = json.loads((run_dir / "timing.json").read_text())
    assert [e["epoch"] for e in timing["epochs"]] == [0, 1, 2]


def test_sigterm_saves_at_once_says_how_to_resume_and_resumes_exactly(uninterrupted):
    tmp, first = uninterrupted
    run_dir = tmp / "t"
    stopped = interrupt(tmp, run_dir, signal.SIGTERM)
    message = stopped.stderr.read()
    assert stopped.returncode == 1 and "Traceback" not in message
    assert "Stopped by SIGTERM" in message and f"hydra.run.dir={run_dir} ckpt_path=last" in message
    started = time.monotonic()
    resumed = train(tmp, run_dir, "ckpt_path=last")
    took = time.monotonic() - started
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metrics(run_dir) == metrics(first)
    timing = json.loads((run_dir / "timing.json").read_text())["epochs"]
    assert [e["epoch"] for e in timing] == [0, 1, 2]
    assert all(0 < e["epoch_s"] < took for e in timing[1:])  # counted by the resumed run
    val = history(run_dir).dropna(subset=["val/f1_macro"])
    assert (
        val["val/f1_macro"].tolist()
        == history(first).dropna(subset=["val/f1_macro"])["val/f1_macro"].tolist()
    )


def test_slurm_requeue_saves_and_the_requeued_job_resumes(uninterrupted, tmp_path):
    """SIGUSR1 under SLURM (``additional_parameters.signal`` in the slurm launcher config):
    Lightning saves an hpc checkpoint and runs ``scontrol requeue`` (here a stand-in that
    records the call and kills the job, as SLURM does); the requeued job, started with the
    same command and ``SLURM_RESTART_COUNT=1``, resumes without being told to."""
    tmp, _ = uninterrupted
    run_dir = tmp_path / "slurm"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/requeued\nkill -KILL $PPID\n')
    scontrol.chmod(0o755)
    env = {
        **cache_env(tmp),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NAME": "rare-species",
        "SLURM_JOB_ID": "4242",
        "SLURM_NODELIST": "localhost",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }
    process = subprocess.Popen(
        command(run_dir), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGUSR1)
    process.wait(timeout=300)
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "4242"]
    assert list(run_dir.glob("hpc_ckpt_*.ckpt")), "no hpc checkpoint saved"
    requeued = subprocess.run(
        command(run_dir),
        cwd=ROOT,
        env={**env, "SLURM_RESTART_COUNT": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert "Restoring states from the checkpoint path at" in requeued.stdout + requeued.stderr
    assert "hpc_ckpt_" in requeued.stdout + requeued.stderr
    timing = json.loads((run_dir / "timing.json").read_text())
    assert [e["epoch"] for e in timing["epochs"]] == [0, 1, 2]
