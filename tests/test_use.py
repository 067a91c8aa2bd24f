"""Using a trained model: predict, export (with parity), DDP on CPU, the SLURM launcher."""

import argparse
import errno
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from src.atomic import OutputError
from src.checkpoints import CheckpointError
from src.data.datamodule import RareSpeciesDataModule
from src.export import export
from src.models.classifier import SpeciesClassifier, load_classifier
from tests.helpers import compose_config, one_error_line, run_module


@pytest.fixture(scope="module")
def checkpoint(tiny_source, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("trained")
    dm = RareSpeciesDataModule(
        root=str(tiny_source), image_size=32, num_workers=0, output_dir=str(tmp / "run")
    )
    model = SpeciesClassifier("src.models.baseline.BaselineCNN", dm.class_names)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule=dm)
    path = tmp / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


def photos(tiny_source: Path, folder: Path) -> Path:
    """Real images in sub-folders, a corrupt one, a text file named .jpg and a huge one."""
    frame = pd.read_csv(tiny_source / "metadata.csv").head(5)
    for rel in frame["file_path"]:
        target = folder / "field" / Path(rel).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((tiny_source / rel).read_bytes())
    (folder / "corrupt.jpg").write_bytes((tiny_source / frame["file_path"][0]).read_bytes()[:200])
    (folder / "notes.jpg").write_text("not a photo")
    Image.new("RGB", (400, 300)).save(folder / "huge.png")
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    return folder


def test_predict_a_folder_and_a_csv(checkpoint, tiny_source, tmp_path):
    folder = photos(tiny_source, tmp_path / "photos")
    result = run_module(
        tmp_path,
        "src.predict",
        f"ckpt_path={checkpoint}",
        f"inputs={folder}",
        "top_k=3",
        f"output={tmp_path / 'p.csv'}",
        "num_workers=0",
        "max_image_pixels=100000",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 8 and "readme.txt" not in " ".join(table["path"])
    status = dict(zip(table["path"].map(lambda p: Path(p).name), table["status"]))
    assert status["corrupt.jpg"] in ("truncated", "not_an_image")
    assert status["notes.jpg"] == "not_an_image" and status["huge.png"] == "too_large"
    ok = table[table["status"] == "ok"]
    assert len(ok) == 5 and {"top1", "p1", "top3", "p3", "phylum", "uncertain"} <= set(table)
    assert (ok["p1"] >= ok["p2"]).all() and (ok["p2"] >= ok["p3"]).all()
    assert "5 images" not in result.stdout and "8 images, 3 unreadable" in result.stdout
    names = load_classifier(checkpoint).class_names
    assert set(ok["top1"]) <= set(names)
    listing = tmp_path / "list.csv"
    pd.DataFrame({"path": [f"photos/field/{p.name}" for p in (folder / "field").iterdir()]}).to_csv(
        listing, index=False
    )
    again = run_module(
        tmp_path,
        "src.predict",
        f"ckpt_path={checkpoint}",
        f"inputs={listing}",
        "num_workers=0",
        f"hydra.run.dir={tmp_path / 'run2'}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (pd.read_csv(tmp_path / "run2" / "predictions.csv")["status"] == "ok").sum() == 5


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch(checkpoint, tmp_path, fmt):
    result = run_module(
        tmp_path,
        "src.export",
        f"ckpt_path={checkpoint}",
        f"format={fmt}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model = load_classifier(checkpoint)
    contract = json.loads(next((tmp_path / "run").glob("*.preprocessing.json")).read_text())
    assert contract["class_names"] == model.class_names and contract["image_size"] == 32
    assert contract["mean"] == list(model.data_config["mean"])
    x = torch.randn(3, 3, 32, 32)
    expected = model(x).detach().numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(tmp_path / "run" / "model.onnx"))
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    else:
        got = torch.jit.load(str(tmp_path / "run" / "model.pt"))(x).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


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
    assert json.loads((run_dir / "test_metrics.json").read_text())["test/f1_macro"] >= 0
    report = pd.read_csv(run_dir / "classification_report.csv")
    test_size = len(pd.read_csv(run_dir / "split" / "test.csv"))
    # gathered from both processes; DistributedSampler pads with at most one duplicate
    assert test_size <= report["support"].sum() <= test_size + 1
    assert len(list(tmp_path.rglob("test_metrics.json"))) == 1


def test_slurm_launcher_config():
    cfg = compose_config(
        "train",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=4",
        "trainer=ddp",
        "trainer.devices=4",
        hydra=True,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.nodes) == ("gpu", 4, 1)
    assert launcher.timeout_min == 240 and cfg.trainer.strategy == "ddp"


@pytest.mark.parametrize(
    "module, kind, says",
    [
        ("src.predict", "unsafe", "was refused for safety"),
        ("src.export", "empty", "is empty (0 bytes)"),
        ("src.export", "garbage", "is not a readable checkpoint"),
    ],
)
def test_an_unusable_checkpoint_is_one_sentence(tiny_source, tmp_path, module, kind, says):
    path = tmp_path / "model.ckpt"
    if kind == "unsafe":  # loading it would unpickle (run) arbitrary code
        torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, path)
    else:
        path.write_bytes(b"" if kind == "empty" else b"not a checkpoint\n" * 64)
    extra = [f"inputs={tiny_source}"] if module == "src.predict" else []
    result = run_module(
        tmp_path, module, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'run'}", *extra
    )
    assert says in one_error_line(result)
    assert "weights_only" not in result.stdout + result.stderr  # never advise unpickling it


def test_a_state_dict_is_not_taken_for_a_classifier(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a checkpoint of this project's classifier"):
        load_classifier(path)


def test_a_failed_export_leaves_the_previous_model(checkpoint, tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"the previous export")

    class DiskFills:
        def save(self, name: str) -> None:
            Path(name).write_bytes(b"half a model")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.jit, "trace", lambda *args, **kwargs: DiskFills())
    with pytest.raises(OutputError, match="is full"):
        export(load_classifier(checkpoint), 32, path, "torchscript")
    assert path.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
