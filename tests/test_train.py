"""End to end: the training entry point as a user runs it, and its configs."""

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
import pytest
import torch

from src.evaluation.answers import trust_metric_names
from src.models.metrics import TEST_KEYS
from src.runs.files import TEMP_SUFFIX
from tests.helpers import (
    ROOT,
    TINY_DATA,
    cache_env,
    compose_config,
    one_error_line,
    run_module,
    unusable_checkpoint,
)
from tests.helpers import TINY_TRAIN as TINY


def run_train(tmp_path: Path, *overrides: str):
    return run_module(tmp_path, "src.train", *overrides)


def test_train_writes_every_output(tiny_run):
    assert (tiny_run / "checkpoints" / "best.ckpt").is_file()
    assert (tiny_run / "checkpoints" / "last.ckpt").is_file()
    assert list((tiny_run / "tensorboard").glob("events.out.tfevents.*"))
    assert (tiny_run / "csv" / "metrics.csv").is_file()
    for split in ("train", "val", "test"):
        assert (tiny_run / "split" / f"{split}.csv").is_file()
    metrics = json.loads((tiny_run / "test_metrics.json").read_text())
    assert set(metrics) >= set(TEST_KEYS)
    assert all(0.0 <= metrics[k] <= 1.0 for k in TEST_KEYS)
    assert 0.0 <= metrics["test/phylum_acc"] <= 1.0  # taxonomy metrics (the index has phyla)
    assert "seed: 7" in (tiny_run / ".hydra" / "config.yaml").read_text()
    info = json.loads((tiny_run / "run_info.json").read_text())
    assert info["packages"]["torch"] and "git_commit" in info and "src.train" in info["command"]


def test_every_epoch_is_timed(tiny_run):
    timing = json.loads((tiny_run / "timing.json").read_text())
    assert [e["epoch"] for e in timing["epochs"]] == [0, 1]
    # 3 batches of 16 per epoch (trainer.limit_train_batches=3)
    assert all(e["train_images"] == 48 for e in timing["epochs"])
    assert all(e["epoch_s"] >= e["train_s"] > 0 and e["val_s"] > 0 for e in timing["epochs"])
    header = (tiny_run / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert {"time/epoch_s", "time/train_images_per_s"} <= set(header.split(","))


def test_checkpoint_names_its_classes(tiny_run):
    checkpoint = torch.load(tiny_run / "checkpoints" / "best.ckpt", weights_only=True)
    names = checkpoint["hyper_parameters"]["class_names"]
    assert names == sorted(names) and len(names) == 6
    # the network's own config node, so the checkpoint alone rebuilds it
    assert checkpoint["hyper_parameters"]["net"]["_target_"] == "src.models.baseline.BaselineCNN"
    datamodule_state = next(v for k, v in checkpoint.items() if k.endswith("RareSpeciesDataModule"))
    assert datamodule_state["class_names"] == names


def test_phyla_are_answered_as_a_phylum_or_unknown(tmp_path):
    result = run_train(tmp_path, *TINY, "data.target=phylum", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert {f"test/{name}" for name in trust_metric_names("phylum")} <= set(metrics)
    assert metrics["test/answered_higher"] == 0  # nothing above the phylum to answer with
    refused = run_train(
        tmp_path,
        *TINY,
        "data.target=phylum",
        "model.hierarchy_loss_weight=0.5",
        f"hydra.run.dir={tmp_path / 'refused'}",
    )
    assert "model.hierarchy_loss_weight=0.5 needs ranks above the target" in one_error_line(refused)


def test_calibration_none_leaves_the_checkpoint_uncalibrated(tmp_path):
    result = run_train(tmp_path, *TINY, "calibration=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert "test/phylum_acc" in metrics and "test/ece" not in metrics
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=True)
    assert "calibration" not in checkpoint
    assert not (tmp_path / "run" / "reliability.png").exists()


def test_a_bad_calibration_setting_stops_before_training(tmp_path):
    result = run_train(tmp_path, *TINY, "calibration.alpha=2", f"hydra.run.dir={tmp_path / 'run'}")
    assert "calibration.alpha=2 is not allowed" in one_error_line(result)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained for nothing


def test_bad_root_is_one_clear_line(tmp_path):
    result = run_train(
        tmp_path,
        "data=rarespecies",
        f"data.root={tmp_path / 'missing'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "does not exist: run `python -m src.data.download" in result.stderr


def train_config(*overrides: str):
    return compose_config("train", *overrides, hydra=True)


def test_default_config_is_the_offline_synthetic_demo():
    cfg = train_config()
    assert cfg.data.synthetic.scale == "small" and cfg.model.net._target_.endswith("BaselineCNN")
    assert cfg.monitor == "val/f1_macro"
    assert cfg.callbacks.model_checkpoint.monitor == "val/f1_macro"


def test_real_data_config_composes():
    cfg = train_config("data=rarespecies", "data.root=/data/rare_species", "data.imbalance=both")
    assert cfg.data.root == "/data/rare_species" and cfg.data.synthetic is None
    assert cfg.data.image_size == 224 and cfg.data.batch_size == 64
    assert cfg.data.split.seed == 42


@pytest.mark.slow
def test_default_demo_learns(tmp_path):
    """`python -m src.train` as a new user runs it: a test macro F1 of at least 0.5."""
    result = run_train(
        tmp_path, f"hydra.run.dir={tmp_path / 'run'}", "trainer.enable_progress_bar=false"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert metrics["test/f1_macro"] >= 0.5


def test_reports_are_written_and_add_up(tiny_run):
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from src.evaluation.writers import RELIABILITY_FILE, REPORT_FILES

    for name in REPORT_FILES:
        assert (tiny_run / name).is_file(), name
    report = pd.read_csv(tiny_run / "classification_report.csv")
    assert {"class", "phylum", "precision", "recall", "f1", "support"} <= set(report.columns)
    assert report["support"].sum() == len(pd.read_csv(tiny_run / "split" / "test.csv"))
    assert set(report["phylum"]) <= {
        "chordata",
        "arthropoda",
        "cnidaria",
        "mollusca",
        "echinodermata",
    }
    assert (tiny_run / RELIABILITY_FILE).is_file()
    images, scalars = set(), set()
    for events in (tiny_run / "tensorboard").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
        accumulator.Reload()
        images |= set(accumulator.Tags()["images"])
        scalars |= set(accumulator.Tags()["scalars"])
    assert {"test/confusion_matrix", "test/errors", "test/reliability"} <= images
    # the taxonomy and calibration metrics too, not only test_metrics.json
    assert {"test/phylum_acc", "test/error_distance", "test/ece", "test/set_coverage"} <= scalars


@pytest.mark.parametrize(
    "kind, says",
    [
        ("missing", "ckpt_path=last found no"),
        ("empty", "is empty (0 bytes)"),
        ("truncated", "is not a readable checkpoint"),
        ("garbage", "is not a readable checkpoint"),
        ("unsafe", "was refused for safety"),
    ],
)
def test_resuming_from_an_unusable_last_checkpoint_is_one_sentence(tiny_run, tmp_path, kind, says):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    if kind != "missing":
        unusable_checkpoint(last, kind, tiny_run / "checkpoints" / "last.ckpt")
    result = run_train(tmp_path, *TINY, "logger=none", f"hydra.run.dir={run_dir}", "ckpt_path=last")
    line = one_error_line(result)
    assert says in line and str(last) in line
    assert "weights_only" not in result.stdout + result.stderr  # never advise unpickling it


@contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A small RAM file system at ``folder``; the test is skipped where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mount = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command to make a small or read-only file system")
    if mount.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """chmod does not stop root from writing: as root, a read-only tmpfs instead."""
    if os.geteuid() == 0:
        with mounted_tmpfs(folder, "ro,size=1m") as mounted:
            yield mounted
        return
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("where", ["below a file", "read-only"])
def test_an_unwritable_run_folder_is_one_sentence(tmp_path, where):
    with ExitStack() as stack:
        if where == "below a file":
            (tmp_path / "taken").write_text("a file where the run folder's parent should be")
            run_dir, says = tmp_path / "taken" / "run", "is a file, not a folder"
        else:
            run_dir = stack.enter_context(read_only_folder(tmp_path / "ro")) / "run"
            says = "is not writable; choose a writable folder (e.g. hydra.run.dir=DIR)"
        result = run_train(tmp_path, *TINY, "logger=none", f"hydra.run.dir={run_dir}")
    assert says in one_error_line(result)


def test_a_full_disk_ends_in_one_sentence_and_leaves_no_truncated_checkpoint(tiny_run, tmp_path):
    size = (tiny_run / "checkpoints" / "last.ckpt").stat().st_size
    # room for the run's small files and one checkpoint but not two: best.ckpt fits,
    # last.ckpt (written after it at the end of the epoch) does not
    room_kib = (size * 3 // 2 + 1_000_000) // 1024
    with mounted_tmpfs(tmp_path / "disk", f"size={room_kib}k") as disk:
        run_dir = disk / "run"
        result = run_train(
            tmp_path, *TINY, "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={run_dir}"
        )
        line = one_error_line(result)
        assert "is full; free some space" in line
        written = list((run_dir / "checkpoints").iterdir())
        assert not [p for p in written if TEMP_SUFFIX in p.name]
        for checkpoint in written:  # whatever is there loads: none is cut short
            assert "state_dict" in torch.load(checkpoint, map_location="cpu", weights_only=True)


def test_ddp_on_two_cpu_processes(tmp_path):
    result = run_module(
        tmp_path,
        "src.train",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "data.synthetic.scale=tiny",
        "data.synthetic.sizes=[40,56]",
        "data.image_size=32",
        "data.num_workers=0",
        "data.imbalance=oversample",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics["test/f1_macro"] >= 0
    # rank 0 calibrated, both processes tested with it
    assert 0 <= metrics["test/set_coverage"] <= 1
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["calibration"]["temperature"] == metrics["test/temperature"]
    report = pd.read_csv(run_dir / "classification_report.csv")
    test_size = len(pd.read_csv(run_dir / "split" / "test.csv"))
    # gathered from both processes; DistributedSampler pads with at most one duplicate
    assert test_size <= report["support"].sum() <= test_size + 1
    assert len(list(tmp_path.rglob("test_metrics.json"))) == 1


SUBMITIT = "hydra_plugins.hydra_submitit_launcher"


@pytest.mark.skipif(
    find_spec(SUBMITIT) is None,
    reason="hydra-submitit-launcher is not installed (pip install -e '.[cluster]')",
)
def test_a_slurm_sweep_submits_the_promised_job(tmp_path):
    """What SLURM would receive: ``sbatch`` (a stand-in that keeps the submission file and
    kills the launcher, so it does not wait for the job) gets the resources asked for,
    conf/hydra/launcher/slurm.yaml's time limit and requeue signal, and src.train's task."""
    from submitit.core.utils import DelayedSubmission

    import src.train

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    submitted = tmp_path / "submitted.sh"
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(
        f'#!/bin/sh\ncp "$1" {submitted}\necho "Submitted batch job 42"\nkill -KILL $PPID\n'
    )
    srun = bin_dir / "srun"  # submitit refuses to submit where there is no srun
    srun.write_text("#!/bin/sh\nexit 1\n")
    for tool in (sbatch, srun):
        tool.chmod(0o755)
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.train",
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=4",
            "hydra.launcher.tasks_per_node=4",
            "trainer=ddp",
            "trainer.devices=4",
            f"hydra.sweep.dir={sweep}",
            *TINY_DATA,
        ],
        cwd=ROOT,
        env={**cache_env(tmp_path), "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert submitted.is_file(), result.stderr[-3000:]
    script = submitted.read_text()
    lines = script.splitlines()
    for flag in (
        "--partition=gpu",
        "--gpus-per-node=4",
        "--ntasks-per-node=4",
        "--nodes=1",
        "--time=240",
        "--signal=USR1@120",
    ):
        assert f"#SBATCH {flag}" in lines, script
    # the job runs submitit's runner on the pickled job in the sweep's .submitit folder
    command = next(line for line in lines if "-m submitit.core._submit" in line)
    assert command.startswith("srun ") and str(sweep / ".submitit") in command
    (pickled,) = (sweep / ".submitit").glob("*.pkl")
    job = DelayedSubmission.load(pickled)
    task = job.function.task_function
    assert Path(task.__globals__["__file__"]) == ROOT / "src" / "train.py"
    assert task.__code__.co_code == inspect.unwrap(src.train.main).__code__.co_code
    assert task.__globals__["train"].__code__.co_code == src.train.train.__code__.co_code
    overrides = job.args[0]
    assert {"trainer=ddp", "trainer.devices=4", *TINY_DATA} <= set(overrides)
