"""Same seed, same metrics; a killed run, resumed, ends where an uninterrupted one does."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, cache_env, run_module

ARGS = [
    "data.synthetic.scale=tiny",
    "data.synthetic.sizes=[40,56]",
    "data.image_size=32",
    "data.num_workers=0",
    "data.imbalance=oversample",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=6",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "logger=none",
    "callbacks.early_stopping=null",
    "seed=3",
]


def command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "src.train", *ARGS, f"hydra.run.dir={run_dir}", *extra]


def train(tmp_path: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_module(tmp_path, "src.train", *ARGS, f"hydra.run.dir={run_dir}", *extra)


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "test_metrics.json").read_text())


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


def test_killed_run_resumes_to_the_same_result(uninterrupted):
    tmp, first = uninterrupted
    run_dir = tmp / "b"
    process = subprocess.Popen(
        command(run_dir),
        cwd=ROOT,
        env=cache_env(tmp),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # let the first checkpoint be written completely
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.is_file() and not (run_dir / "test_metrics.json").exists(), "not interrupted"
    resumed = train(tmp, run_dir, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stdout + resumed.stderr
    assert metrics(run_dir) == metrics(first)
