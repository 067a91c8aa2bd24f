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
