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
