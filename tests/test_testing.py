"""Calibrated answers end to end (src/evaluation/testing.py, then evaluate, predict, export)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from src.data.datamodule import RareSpeciesDataModule
from src.data.synthetic import write_synthetic
from src.evaluation.answers import UNKNOWN, trust_metric_names
from src.evaluation.calibration import Calibrator, expected_calibration_error, softmax
from src.evaluation.testing import collect_logits
from src.models.classifier import load_classifier
from src.runs.checkpoints import read_checkpoint
from tests.helpers import TINY_DATA, exported, run_module

ALPHA = 0.1


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A model that has learnt something: the tiny data, 12 whole epochs (seed 3)."""
    tmp = tmp_path_factory.mktemp("trained_run")
    result = run_module(
        tmp,
        "src.train",
        *TINY_DATA,
        "data.batch_size=16",
        "trainer.max_epochs=12",
        "callbacks.early_stopping.patience=100",
        "logger=none",
        "seed=3",
        f"hydra.run.dir={tmp / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run"


def loaders_of(root: Path, split_dir: Path, tmp_path: Path, model) -> RareSpeciesDataModule:
    dm = RareSpeciesDataModule(
        root=str(root),
        image_size=32,
        num_workers=2,  # the default: the logits must come back in the rows' order
        split_dir=str(split_dir),
        output_dir=str(tmp_path),
    )
    dm.setup("test")
    dm.use_data_config(model.data_config)
    dm.setup("test")
    return dm


def test_training_calibrates_and_reports_it(trained_run):
    metrics = json.loads((trained_run / "test_metrics.json").read_text())
    assert {f"test/{name}" for name in trust_metric_names("family")} <= set(metrics)
    assert 0 <= metrics["test/scope_auroc"] <= 1  # the tiny set's outliers are in test
    assert (trained_run / "reliability.png").stat().st_size > 0
    checkpoint = read_checkpoint(trained_run / "checkpoints" / "best.ckpt")
    assert checkpoint["calibration"]["temperature"] == metrics["test/temperature"]
    model = load_classifier(trained_run / "checkpoints" / "best.ckpt")
    assert model.calibration is not None and model.calibration.alpha == ALPHA
    # sets that say something: most test images are answered, mostly rightly
    assert metrics["test/set_size"] < 6 and metrics["test/answered_unknown"] < 0.9
    assert metrics["test/answer_acc"] > 0.5


@pytest.fixture(scope="module")
def five_data_sets(trained_run, tmp_path_factory) -> list[tuple]:
    """The trained model's (val, test) logits and labels on 5 synthetic data sets (seeds 1 to
    5: the training run's rows and split, other pixels), read with 2 loader workers."""
    tmp = tmp_path_factory.mktemp("five")
    model = load_classifier(trained_run / "checkpoints" / "best.ckpt")
    outputs = []
    for seed in range(1, 6):
        root = write_synthetic(
            tmp / f"data{seed}", scale="tiny", seed=seed, sizes=(40, 56), progress=False
        )
        dm = loaders_of(root, trained_run / "split", tmp / f"run{seed}", model)
        val = collect_logits(model, dm.val_dataloader(), torch.device("cpu"))
        test = collect_logits(model, dm.test_dataloader(), torch.device("cpu"))
        assert list(test[1]) == dm.labels_of(dm.rows["test"])  # in the rows' order
        outputs.append((val, test))
    return outputs


def test_mean_coverage_over_five_synthetic_data_sets(five_data_sets):
    """Calibrated on each data set's val split, tested on its test split: split-conformal
    coverage holds whatever the model."""
    coverages, sizes = [], []
    for (val_logits, val_labels), (test_logits, test_labels) in five_data_sets:
        calibration = Calibrator(alpha=ALPHA).fit(val_logits, val_labels)
        sets = calibration.prediction_sets(calibration.probabilities(test_logits))
        coverages.append(sets[np.arange(len(test_labels)), test_labels].mean())
        sizes.append(sets.sum(1).mean())
    assert np.mean(coverages) >= 1 - ALPHA - 0.02, coverages
    assert np.mean(sizes) < 6  # not every one of the 6 families: the sets say something


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model(five_data_sets):
    """The trained model's logits x10 (as if its last layer's weights were 10 times larger),
    calibrated on the 5 data sets' val images, scored on their test images."""
    sharp = 10.0
    val_logits = np.concatenate([val[0] for val, _ in five_data_sets]) * sharp
    val_labels = np.concatenate([val[1] for val, _ in five_data_sets])
    test_logits = np.concatenate([test[0] for _, test in five_data_sets]) * sharp
    test_labels = np.concatenate([test[1] for _, test in five_data_sets])
    calibration = Calibrator().fit(val_logits, val_labels)
    before = expected_calibration_error(softmax(test_logits), test_labels)
    after = expected_calibration_error(calibration.probabilities(test_logits), test_labels)
    assert calibration.temperature > 2 and after < before, (before, after)


def not_animals(folder: Path) -> list[Path]:
    """A blank frame and a page of text, as a camera trap or a scanned label gives them."""
    folder.mkdir()
    Image.new("RGB", (64, 48), (245, 245, 240)).save(folder / "blank.png")
    page = Image.new("RGB", (64, 48), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    for line in range(5):
        draw.text(
            (2, 2 + 9 * line),
            "specimen label 1893",
            fill=(0, 0, 0),
            font=ImageFont.load_default(size=8),
        )
    page.save(folder / "text.png")
    return sorted(folder.iterdir())


def test_predict_answers_unknown_or_flags_what_is_not_an_animal(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    not_animals(tmp_path / "photos")
    model = load_classifier(ckpt)
    root = Path(model.run_config["data"]["root"])
    test_rows = pd.read_csv(trained_run / "split" / "test.csv").head(12)
    animals = tmp_path / "photos" / "animals"
    animals.mkdir()
    for rel in test_rows["file_path"]:
        (animals / Path(rel).name).write_bytes((root / rel).read_bytes())
    result = run_module(
        tmp_path,
        "src.predict",
        f"ckpt_path={ckpt}",
        f"inputs={tmp_path / 'photos'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "run" / "predictions.csv", keep_default_na=False)
    assert {"answer", "answer_rank", "set", "set_size", "out_of_scope"} <= set(table)
    by_name = table.set_index(table["path"].map(lambda p: Path(p).name))
    for name in ("blank.png", "text.png"):
        row = by_name.loc[name]
        assert row["answer"] == UNKNOWN or row["out_of_scope"] == "True", row.to_dict()
    answered = table[table["answer"] != UNKNOWN]
    assert len(answered) > 0  # animals do get answers
    for row in answered.itertuples():
        members = row.set.split("; ")
        assert row.set_size == len(members)
        if row.answer_rank == "family":
            assert members == [row.answer]


def test_export_bakes_in_the_temperature_and_says_so(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    model_file, contract = exported(tmp_path, ckpt)
    model = load_classifier(ckpt)
    assert contract["calibrated"] is True
    assert contract["temperature"] == model.calibration.temperature
    assert contract["prediction_set"]["threshold"] == pytest.approx(
        min(1.0, model.calibration.set_threshold())
    )
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x) / model.calibration.temperature
        assert torch.allclose(torch.jit.load(str(model_file))(x), expected, atol=1e-5)
