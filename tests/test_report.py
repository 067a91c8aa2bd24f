"""``python -m src.report``: baselines and trained runs in one table, with what each measured,
where, and the published numbers beside comparable rows."""

import json

import pandas as pd
from omegaconf import OmegaConf

from src.baselines import run_baseline
from src.evaluation.published import published_accuracy, published_for
from src.report import main
from tests.helpers import compose_config


def baseline_run(folder, clip_configs, method, *extra):
    """``python -m src.baselines`` in process, with the config Hydra would save beside it."""
    cfg = compose_config(
        "baselines",
        f"method={method}",
        "debug=tiny",
        "model=openclip",
        "model.net.name=tiny-clip",
        f"model.net.config_dir={clip_configs}",
        "data.image_size=32",
        f"paths.output_dir={folder}",
        *extra,
    )
    run_baseline(cfg)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    return folder


def test_baselines_and_a_trained_run_in_one_table(tmp_path, clip_configs, tiny_run, capsys):
    zeroshot = baseline_run(tmp_path / "zeroshot", clip_configs, "zeroshot")
    fewshot = baseline_run(
        tmp_path / "fewshot", clip_configs, "fewshot", "shots=[1,2]", "repeats=2"
    )
    main([str(zeroshot), str(fewshot), str(tiny_run), "--out", str(tmp_path / "table")])
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "table" / "results.csv")
    assert list(table["method"]) == ["zero-shot", "few-shot 1", "few-shot 2", "trained"]
    assert list(table["model"]) == ["tiny-clip (random init)"] * 3 + ["baseline CNN"]
    assert set(table["target"]) == {"family"} and set(table["data"]) == {"synthetic tiny, 32 px"}
    assert table["where"].str.startswith("CPU").all()
    assert table["test/acc"].notna().all() and table["test/f1_macro"].notna().all()
    assert table["test/acc_std"].notna().tolist() == [False, True, True, False]
    trained = json.loads((tiny_run / "test_metrics.json").read_text())
    assert table["test/acc"].iloc[3] == trained["test/acc"]
    assert "| few-shot 2 | tiny-clip (random init) | family |" in printed
    assert "4 runs" in printed
    assert (tmp_path / "table" / "results.md").read_text().count("\n| ") == 4


def test_published_numbers_only_beside_comparable_runs(tmp_path, capsys):
    run = tmp_path / "bioclip"
    (run / ".hydra").mkdir(parents=True)
    (run / "baseline.json").write_text(
        json.dumps(
            {"method": "zeroshot", "model": "hf-hub:imageomics/bioclip", "target": "species"}
        )
    )
    (run / "test_metrics.json").write_text(json.dumps({"test/acc": 0.4}))
    main([str(run), "--published"])
    printed = capsys.readouterr().out
    assert "| zero-shot | hf-hub:imageomics/bioclip | species |" in printed
    assert "38.09" in printed and "| BioCLIP 2 (ViT-L/14) | 76.8 |" in printed
    assert published_accuracy("fewshot", 5, "ViT-B-16-quickgelu", "openai", "species") == 46.07
    assert published_accuracy("fewshot", 5, "ViT-B-16", "laion400m_e32", "species") == 47.45
    assert published_accuracy("zeroshot", None, "hf-hub:imageomics/bioclip", None, "family") is None
    assert (
        published_accuracy("linear_probe", None, "hf-hub:imageomics/bioclip", None, "species")
        is None
    )
    assert published_for("tiny-clip", None) is None
