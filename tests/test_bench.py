"""The benchmark CLI runs and writes its tables (the numbers themselves are not asserted)."""

import json

from src.bench import main


def test_model_bench_writes_json_and_markdown(tmp_path):
    main(
        ["model", "--device", "cpu", "--backbones", "baseline", "--image-size", "16"]
        + ["--batch-size", "4", "--steps", "1", "--repeat", "1", "--out", str(tmp_path)]
    )
    written = json.loads((tmp_path / "bench.json").read_text())
    (row,) = written["results"]
    assert row["backbone"] == "baseline" and row["precision"] == "32-true"
    assert row["plain_images_per_s"] > 0 and row["lightning_images_per_s"] > 0
    assert written["machine"]["cores"] >= 1
    assert "| baseline | all | 32-true |" in (tmp_path / "bench.md").read_text()


def test_baselines_bench_measures_embedding_and_fewshot(tmp_path, clip_configs):
    main(
        ["baselines", "--device", "cpu", "--clip-model", "tiny-clip"]
        + ["--clip-config-dir", str(clip_configs), "--images", "4", "--batch-size", "2"]
        + ["--classes", "5", "--per-class", "10", "--dim", "8", "--repeats", "2"]
        + ["--out", str(tmp_path)]
    )
    embedding, fewshot = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert embedding["bench"] == "clip_embedding" and embedding["images_per_s"] > 0
    assert embedding["image_size"] == 32 and embedding["precision"] == "fp32"
    assert fewshot["bench"] == "fewshot" and fewshot["wall_s"] > 0
    assert (fewshot["train_images"], fewshot["test_images"]) == (40, 5)
    assert "### fewshot" in (tmp_path / "bench.md").read_text()


def test_bank_bench_compares_images_and_the_bank_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("RARE_SPECIES_CACHE", str(tmp_path / "cache"))
    main(
        ["bank", "--backbone", "resnet18", "--image-size", "32", "--epochs", "1"]
        + ["--views", "0", "2", "--overrides", "debug=tiny", "--out", str(tmp_path)]
    )
    images, bank = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert images["path"].startswith("images") and bank["path"] == "bank, 2 views"
    assert images["x_images"] == 1.0 and bank["x_images"] > 0
    assert 0 <= bank["test_f1_macro"] <= 1 and bank["wall_s"] > 0


def test_overhead_bench_times_both_loops_and_profiles_the_step(tmp_path):
    main(
        ["overhead", "--backbone", "resnet18", "--batch-size", "8", "--steps", "200"]
        + ["--device", "cpu", "--out", str(tmp_path)]
    )
    summary, *profile = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert summary["plain_us_per_step"] > 0 and summary["lightning_us_per_step"] > 0
    assert len(profile) == 15 and all(row["calls_per_step"] > 0 for row in profile)
    assert "### overhead profile" in (tmp_path / "bench.md").read_text()


def test_study_bench_accounts_for_the_whole_study(tmp_path, monkeypatch):
    monkeypatch.setenv("RARE_SPECIES_CACHE", str(tmp_path / "cache"))
    main(
        ["study", "--out", str(tmp_path), "--overrides", "hparams_search=baseline_hyperband"]
        + ["debug=tiny", "logger=none", "hparams_search.n_trials=2"]
        + ["hparams_search.pruner.max_resource=2"]
    )
    (row,) = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert row["trials"] == 2 == row["completed"] + row["pruned"] + row["failed"]
    assert row["epochs_max"] == 4 and 0 < row["epochs_spent"] <= 4
    assert 0 < row["outside_epochs_share"] < 1
    assert (tmp_path / "study_summary.md").read_text().startswith("Trial-epochs spent:")
