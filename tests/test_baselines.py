"""``python -m src.baselines METHOD``: a tiny random open_clip model through the real command,
writing what a trained run writes, on the same rows; the command line's errors."""

import json

import pandas as pd
import pytest

from src.baselines import UsageError, hydra_arguments, run_baseline
from src.errors import ConfigError
from src.evaluation.answers import trust_metric_names
from src.evaluation.baselines import clip_spec
from src.models.metrics import TEST_KEYS
from tests.helpers import compose_config, one_error_line, run_module


def tiny_clip(clip_configs) -> list[str]:
    return [
        "debug=tiny",
        "model=openclip",
        "model.net.name=tiny-clip",
        f"model.net.config_dir={clip_configs}",
        "data.image_size=32",
    ]


def run_baselines(tmp_path, clip_configs, method, *extra):
    return run_module(
        tmp_path,
        "src.baselines",
        method,
        *tiny_clip(clip_configs),
        f"embeddings_dir={tmp_path / 'embeddings'}",
        f"hydra.run.dir={tmp_path / method}",
        *extra,
    )


def read_json(path):
    return json.loads(path.read_text())


def test_zeroshot_then_fewshot_through_the_command(tmp_path, clip_configs, tiny_run):
    trained_keys = set(read_json(tiny_run / "test_metrics.json"))
    assert set(TEST_KEYS) <= trained_keys

    zeroshot = run_baselines(tmp_path, clip_configs, "zeroshot")
    assert zeroshot.returncode == 0, zeroshot.stderr[-3000:]
    run = tmp_path / "zeroshot"
    # calibrated on val like the trained run; only the out-of-scope AUROC is the run's own
    assert set(read_json(run / "test_metrics.json")) == trained_keys - {"test/scope_auroc"}
    for name in ("classification_report.csv", "confusion_matrix.png", "errors.png"):
        assert (run / name).is_file(), name
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "run_info.json").is_file()
    info = read_json(run / "baseline.json")
    assert info["method"] == "zeroshot" and info["model"] == "tiny-clip" and info["random_init"]
    # the rows of training: the same split, every test image scored once
    test_rows = pd.read_csv(run / "split" / "test.csv")
    pd.testing.assert_frame_equal(test_rows, pd.read_csv(tiny_run / "split" / "test.csv"))
    report = pd.read_csv(run / "classification_report.csv")
    assert report["support"].sum() == len(test_rows) == info["images"]["test"]
    prompts = pd.read_csv(run / "zeroshot_prompts.csv")
    assert prompts["prompts"].str.contains("a photo of ").all()
    # the val images (for the calibration) and the test images
    caches = {path: path.stat().st_mtime_ns for path in (tmp_path / "embeddings").glob("*.npz")}
    assert len(caches) == 2

    fewshot = run_baselines(tmp_path, clip_configs, "fewshot", "shots=[1,2]", "repeats=3")
    assert fewshot.returncode == 0, fewshot.stderr[-3000:]
    run = tmp_path / "fewshot"
    repeats = pd.read_csv(run / "fewshot_repeats.csv")
    assert [(r.shots, r.repeat) for r in repeats.itertuples()] == [
        (k, r) for k in (1, 2) for r in range(3)
    ]
    not_fewshot = {*trust_metric_names("family"), "scope_auroc"}
    for k in (1, 2):
        metrics = read_json(run / f"{k}shot" / "test_metrics.json")
        # few-shot classifiers are not calibrated: the metrics of the probabilities alone
        untrusted = {key for key in trained_keys if key.split("/")[1] in not_fewshot}
        kept = trained_keys - untrusted
        assert set(metrics) == kept | {f"{key}_std" for key in kept}
        assert metrics["test/acc"] == pytest.approx(repeats[repeats.shots == k]["test/acc"].mean())
        assert (run / f"{k}shot" / "classification_report.csv").is_file()
        assert read_json(run / f"{k}shot" / "baseline.json")["shots"] == k
    # the test images' embeddings were reused, the training images' computed once
    assert all(path.stat().st_mtime_ns == when for path, when in caches.items())
    assert len(list((tmp_path / "embeddings").glob("*.npz"))) == 3
    reused = f"Reusing the embeddings of {len(test_rows)} test images"
    assert reused in fewshot.stdout + fewshot.stderr


def test_linear_probe_chooses_c_on_val_and_tests(tmp_path, clip_configs):
    cfg = compose_config(
        "baselines",
        "method=linear_probe",
        *tiny_clip(clip_configs),
        "probe.C=[0.1,10.0]",
        f"paths.output_dir={tmp_path / 'run'}",
    )
    metrics = run_baseline(cfg)
    taxonomy = {f"test/{k}" for k in ("phylum_acc", "phylum_f1_macro", "errors_within_phylum")}
    trust = {f"test/{name}" for name in trust_metric_names("family")}  # calibrated on val
    assert set(metrics) == {*TEST_KEYS, "test/loss", *taxonomy, "test/error_distance", *trust}
    assert read_json(tmp_path / "run" / "test_metrics.json") == pytest.approx(metrics, nan_ok=True)
    grid = pd.read_csv(tmp_path / "run" / "probe_grid.csv")
    info = read_json(tmp_path / "run" / "baseline.json")
    assert list(grid["C"]) == [0.1, 10.0]
    assert info["C"] == grid.loc[grid["val/f1_macro"].idxmax(), "C"]


def test_a_bad_method_is_one_sentence(tmp_path):
    line = one_error_line(run_module(tmp_path, "src.baselines", "fit", "debug=tiny"))
    assert "Unknown method 'fit'" in line
    assert "python -m src.baselines zeroshot|fewshot|linear_probe" in line
    with pytest.raises(UsageError, match="Give the method first"):
        hydra_arguments(["debug=tiny"])
    with pytest.raises(UsageError, match="Give the method first"):
        hydra_arguments([])
    assert hydra_arguments(["fewshot", "shots=[1]"]) == ["method=fewshot", "shots=[1]"]
    assert hydra_arguments(["--help"]) == ["--help"]


def test_hydra_help_and_config_still_work(tmp_path):
    shown = run_module(tmp_path, "src.baselines", "zeroshot", "--cfg", "job")
    assert shown.returncode == 0 and "method: zeroshot" in shown.stdout
    assert "templates:" in shown.stdout
    helped = run_module(tmp_path, "src.baselines", "--help")
    assert helped.returncode == 0
    assert "Usage: python -m src.baselines zeroshot|fewshot|linear_probe" in helped.stdout


def test_a_model_without_clip_spec_is_one_sentence():
    net = compose_config("baselines", "method=zeroshot", "model=convnext").model.net
    with pytest.raises(ConfigError, match="zeroshot needs an open_clip model .* model=convnext"):
        clip_spec(net, "zeroshot", "convnext")
    with pytest.raises(ConfigError, match="fewshot .* only a model with a CLIP spec"):
        clip_spec(net, "fewshot", "convnext")
    bioclip = compose_config("baselines", "method=fewshot").model.net
    assert clip_spec(bioclip, "fewshot").model == "hf-hub:imageomics/bioclip"


def test_an_open_clip_model_without_a_name_is_one_sentence():
    net = compose_config("baselines", "method=zeroshot", "model=openclip").model.net
    with pytest.raises(ConfigError, match=r"needs the open_clip model's name: set model.net.name"):
        clip_spec(net, "zeroshot", "openclip")
