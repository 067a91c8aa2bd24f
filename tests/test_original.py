"""The original's table: one preset per row (conf/experiment/original), the whole table in
one multirun, and src.report --original beside it (src/evaluation/original.py)."""

import subprocess
import sys

import pandas as pd
import pytest

from src.evaluation.original import ORIGINAL, with_original
from src.runs.cli import register_resolvers
from tests.helpers import ROOT, TINY_DATA, cache_env, compose_config

BACKBONES = {
    "baseline_original": None,
    "vgg19_original": "vgg19.tv_in1k",
    "resnet152v2_oversampled": "resnetv2_152x2_bit.goog_in21k_ft_in1k",
    "efficientnetv2_b0_oversampled": "tf_efficientnetv2_b0.in1k",
    "convnext_original": "convnext_base.fb_in22k_ft_in1k",
    "convnext_oversampled": "convnext_base.fb_in22k_ft_in1k",
    "convnext_onlyanimals_oversampled": "convnext_base.fb_in22k_ft_in1k",
}


@pytest.mark.parametrize("row", sorted(ORIGINAL))
def test_each_row_is_a_preset_with_the_originals_settings(row):
    register_resolvers()
    cfg = compose_config("train", f"experiment=original/{row}")
    assert cfg.original_row == row
    assert cfg.model.net.get("backbone") == BACKBONES[row]
    assert dict(cfg.model.optimizer) == {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01}
    assert dict(cfg.model.scheduler) == {"name": "exponential", "gamma": 0.95}
    assert (cfg.monitor, cfg.monitor_mode) == ("val/loss", "min")
    assert cfg.callbacks.early_stopping.patience == 3 and cfg.data.preprocess == "original"
    assert cfg.data.imbalance == ("oversample" if "oversampled" in row else "none")
    headline = row == "convnext_onlyanimals_oversampled"
    assert cfg.trainer.max_epochs == (4 if headline else 100)
    assert bool(cfg.data.keep_index) == headline
    if BACKBONES[row]:
        assert cfg.model.net.freeze == "all" and cfg.model.net.head.hidden == [128]
        assert cfg.model.net.head.dropout == 0.5 and cfg.model.net.pretrained is True


def test_ours_beside_theirs_with_the_difference():
    table = pd.DataFrame(
        {
            "original_row": ["vgg19_original", "", "vgg19_original"],
            "data": ["rarespecies, 224 px", "rarespecies", "synthetic small, 64 px"],
            "test/acc": [0.70, 0.5, 0.9],
            "test/f1_macro": [0.60, 0.4, 0.9],
        }
    )
    compared = with_original(table)
    assert compared["original"].tolist() == ["VGG19, original", "", "VGG19, original"]
    # a synthetic run is shown beside the original, never as better or worse than it
    assert compared["test/acc (original)"][2] == 0.612
    assert pd.isna(compared["test/acc - original"][2])
    assert compared["test/acc (original)"][0] == 0.612
    assert compared["test/acc - original"][0] == pytest.approx(0.70 - 0.612)
    assert compared["test/f1_macro - original"][0] == pytest.approx(0.60 - 0.576)
    assert pd.isna(compared["test/acc - original"][1])


@pytest.mark.slow
def test_the_whole_table_in_one_multirun_on_synthetic_data(tmp_path):
    """Every preset end to end on the tiny synthetic set, offline (random backbones), then
    src.report --original over the sweep."""
    sweep = tmp_path / "table"
    env = cache_env(tmp_path)
    overrides = [
        *TINY_DATA,
        "pretrained=false",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "logger=none",
        f"hydra.sweep.dir={sweep}",
    ]
    command = [sys.executable, "-m", "src.train", "-m", "+experiment/original=glob(*)"]
    result = subprocess.run(
        [*command, *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "src.report", str(sweep), "--original", "--monitor", "val/loss"]
        + ["--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert sorted(table["original_row"]) == sorted(ORIGINAL)
    assert (table["status"] == "completed").all()
    assert (table["test/acc (original)"] != "").all()
    assert "test/acc - original" not in table  # synthetic: no difference claimed
    assert "ConvNeXtBase, only animals + oversampled (headline)" in report.stdout
