"""python -m src.export format=hf: a folder to share, which predict and evaluate take in
place of a checkpoint (src/models/model_folder.py)."""

import json

import pytest
import torch

from src.models.classifier import load_classifier
from src.models.model_folder import CONFIG_FILE, WEIGHTS_FILE
from src.runs.checkpoints import CheckpointError
from tests.helpers import one_error_line, run_module, same_test_metrics


@pytest.fixture(scope="module")
def model_folder(tiny_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf")
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    result = run_module(
        tmp,
        "src.export",
        f"ckpt_path={ckpt}",
        "format=hf",
        f"output={tmp / 'model'}",
        f"hydra.run.dir={tmp / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "model"


def test_the_folder_rebuilds_the_same_model(model_folder, tiny_run):
    assert {p.name for p in model_folder.iterdir()} == {
        "model.safetensors",
        "config.json",
        "README.md",
        "split",
    }
    assert sorted(p.name for p in (model_folder / "split").iterdir()) == [
        "test.csv",
        "train.csv",
        "val.csv",
    ]
    config = json.loads((model_folder / CONFIG_FILE).read_text())
    assert config["preprocessing"]["calibrated"] is True and config["calibration"]
    shared = load_classifier(model_folder)
    original = load_classifier(tiny_run / "checkpoints" / "best.ckpt")
    assert shared.class_names == original.class_names
    assert shared.calibration == original.calibration
    assert shared.hparams.taxonomy == original.hparams.taxonomy
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(shared(x), original(x))


def test_evaluate_takes_the_folder_and_its_split(model_folder, tiny_run, tmp_path):
    result = run_module(
        tmp_path,
        "src.evaluate",
        f"ckpt_path={model_folder}",
        "trainer.limit_test_batches=2",  # as the tiny run tested
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path / 'ev'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    same_test_metrics(tiny_run, tmp_path / "ev", tolerance=1e-6)
    refused = run_module(tmp_path, "src.evaluate", f"ckpt_path={model_folder}", "calibrate=true")
    assert "is a model folder: calibrate the checkpoint it was exported from" in one_error_line(
        refused
    )


def test_a_damaged_or_foreign_folder_is_one_sentence(model_folder, tmp_path, tiny_source):
    import shutil

    broken = shutil.copytree(model_folder, tmp_path / "broken")
    (broken / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="without config.json"):
        load_classifier(broken)
    truncated = shutil.copytree(model_folder, tmp_path / "truncated")
    data = (truncated / WEIGHTS_FILE).read_bytes()
    (truncated / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="missing or damaged"):
        load_classifier(truncated)
    hostile = shutil.copytree(model_folder, tmp_path / "hostile")
    config = json.loads((hostile / CONFIG_FILE).read_text())
    config["hyper_parameters"]["net"]["_target_"] = "os.system"
    (hostile / CONFIG_FILE).write_text(json.dumps(config))
    image = next(tiny_source.rglob("*.jpg"))
    result = run_module(tmp_path, "src.predict", f"ckpt_path={hostile}", f"inputs={image}")
    assert "'os.system', which is not one of this project's networks" in one_error_line(result)
