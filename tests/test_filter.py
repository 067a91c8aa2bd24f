"""The CLIP "only animals" filter and data=onlyanimals, with a tiny random open_clip model."""

import json
from pathlib import Path

import pandas as pd
import pytest

from src.data.datamodule import RareSpeciesDataModule
from src.models.clip import ClipSpec
from src.models.zeroshot import cache_key, decide, expand_prompts, score, scores_frame
from tests.helpers import TINY_DATA, compose_config, run_module

ANIMAL = ["a photo of an animal", "a photo of a {phylum}"]
OTHER = ["a map", "text", "a blank image"]


def test_phylum_prompts_expand():
    assert expand_prompts(ANIMAL, ["chordata", "mollusca"]) == [
        "a photo of an animal",
        "a photo of a chordata",
        "a photo of a mollusca",
    ]


def test_tiny_clip_scores_a_data_set(clip_configs, tiny_source):
    index = pd.read_csv(tiny_source / "metadata.csv")
    animal = expand_prompts(ANIMAL, sorted(index["phylum"].unique()))
    spec = ClipSpec("tiny-clip", pretrained=None)
    probabilities, problems = score(
        spec,
        tiny_source,
        index["file_path"],
        animal + OTHER,
        batch_size=32,
        num_workers=0,
        progress=False,
    )
    assert probabilities.shape == (len(index), len(animal) + len(OTHER))
    frame = scores_frame(index, probabilities, problems, animal, OTHER)
    assert len(frame) == len(index) and list(frame["file_path"]) == list(index["file_path"])
    assert frame["p_animal"].between(0, 1).all()
    assert set(frame["best_non_animal_prompt"]) <= set(OTHER)
    threshold = float(frame["p_animal"].median())
    decided = decide(frame, threshold)
    assert (decided["keep"] == (decided["p_animal"] > threshold)).all()
    assert set(decided["decision"]) <= {"animal", "not animal"}


def test_cache_key_changes_with_model_prompts_and_files():
    spec = ClipSpec("tiny-clip", None)
    base = cache_key(spec, ANIMAL, OTHER, ["a.jpg"])
    assert base == cache_key(spec, ANIMAL, OTHER, ["a.jpg"])
    assert base != cache_key(ClipSpec("ViT-B-16-quickgelu", "openai"), ANIMAL, OTHER, ["a.jpg"])
    assert base != cache_key(spec, ANIMAL, OTHER[:-1], ["a.jpg"])
    assert base != cache_key(spec, ANIMAL, OTHER, ["a.jpg", "b.jpg"])


FILTER = [*TINY_DATA, "filter.model=tiny-clip", "filter.pretrained=null"]


def run_filter(tmp_path, clip_configs, *extra):
    return run_module(
        tmp_path,
        "src.filter",
        *FILTER,
        f"filter.model_config_dir={clip_configs}",
        f"filter.out_dir={tmp_path / 'filtered'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        *extra,
    )


def test_filter_cli_writes_scores_index_and_sheets_and_reuses_scores(
    tmp_path, clip_configs, monkeypatch
):
    first = run_filter(tmp_path, clip_configs, "filter.threshold=0.5")
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "filtered"
    scores = pd.read_csv(out / "clip_scores.csv", keep_default_na=False)
    index = pd.read_csv(out / "metadata_onlyanimals.csv")
    assert {
        "rare_species_id",
        "file_path",
        "p_animal",
        "best_non_animal_prompt",
        "keep",
        "decision",
    } <= set(scores.columns)
    assert list(index["file_path"]) == list(scores.loc[scores["keep"], "file_path"])
    assert (out / "filter_removed.png").is_file() and (out / "filter_borderline.png").is_file()
    threshold = float(scores["p_animal"].median())
    rescored = filter_in_process(tmp_path, clip_configs, monkeypatch, threshold)
    assert list(rescored["p_animal"]) == list(scores["p_animal"])  # same scores, new decision
    assert (rescored["keep"] == (rescored["p_animal"] > threshold)).all()
    written = pd.read_csv(out / "clip_scores.csv", keep_default_na=False)
    assert written["keep"].sum() == rescored["keep"].sum()


def filter_in_process(tmp_path, clip_configs, monkeypatch, threshold: float) -> pd.DataFrame:
    """src.filter again with another threshold; CLIP must not run (the scores are cached)."""
    import src.filter

    def no_clip(*args, **kwargs):
        raise AssertionError("CLIP ran although the scores were cached")

    monkeypatch.setattr(src.filter, "score", no_clip)
    monkeypatch.setenv("RARE_SPECIES_CACHE", str(tmp_path / "cache"))
    cfg = compose_config(
        "filter",
        *FILTER,
        f"filter.model_config_dir={clip_configs}",
        f"filter.out_dir={tmp_path / 'filtered'}",
        f"filter.threshold={threshold}",
        f"paths.output_dir={tmp_path / 'run2'}",
    )
    return src.filter.run_filter(cfg)


def onlyanimals(root: Path, tmp_path: Path, keep: pd.DataFrame, **kwargs):
    keep.to_csv(root / "metadata_onlyanimals.csv", index=False)
    return RareSpeciesDataModule(
        root=str(root),
        image_size=32,
        num_workers=0,
        output_dir=str(tmp_path / "run"),
        keep_index=str(root / "metadata_onlyanimals.csv"),
        **kwargs,
    )


def test_onlyanimals_drops_exactly_the_removed_rows_and_keeps_the_split(tiny_root, tmp_path):
    full = RareSpeciesDataModule(
        root=str(tiny_root), image_size=32, num_workers=0, output_dir=str(tmp_path / "full")
    )
    index = pd.read_csv(tiny_root / "metadata.csv")
    truth = pd.read_csv(tiny_root / "synthetic_truth.csv")
    keep = index[truth["kind"].to_numpy() == "animal"]
    filtered = onlyanimals(tiny_root, tmp_path, keep)
    full.setup()
    filtered.setup()
    assert filtered.class_names == full.class_names  # indices never shift
    removed = set(index["file_path"]) - set(keep["file_path"])
    for split in ("train", "val", "test"):
        before, after = set(full.rows[split]["file_path"]), set(filtered.rows[split]["file_path"])
        assert after == before - removed
    assert filtered.test_sets == ["test", "test_full"]
    assert len(filtered.datasets["test_full"]) == len(full.rows["test"])
    unfiltered_eval = onlyanimals(tiny_root, tmp_path / "b", keep, filter_eval=False)
    unfiltered_eval.setup()
    assert set(unfiltered_eval.rows["test"]["file_path"]) == set(full.rows["test"]["file_path"])
    assert set(unfiltered_eval.rows["train"]["file_path"]) == set(
        filtered.rows["train"]["file_path"]
    )
    assert unfiltered_eval.test_sets == ["test"]


def test_a_family_without_training_images_is_named(tiny_root, tmp_path, caplog):
    index = pd.read_csv(tiny_root / "metadata.csv")
    gone = sorted(index["family"].unique())[0]
    dm = onlyanimals(tiny_root, tmp_path, index[index["family"] != gone])
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    assert f"No training image left after filtering for: {gone}" in caplog.text
    assert dm.num_classes == index["family"].nunique()


def test_training_on_filtered_data_reports_both_test_sets(tmp_path):
    from src.data.synthetic import ensure_synthetic, synthetic_dir_name

    root = ensure_synthetic(
        tmp_path / "cache" / synthetic_dir_name("tiny", 0, [40, 56]), scale="tiny", sizes=(40, 56)
    )
    index = pd.read_csv(root / "metadata.csv")
    truth = pd.read_csv(root / "synthetic_truth.csv")
    index[truth["kind"].to_numpy() == "animal"].to_csv(tmp_path / "keep.csv", index=False)
    result = run_module(
        tmp_path,
        "src.train",
        *TINY_DATA,
        "data.image_size=32",
        f"data.keep_index={tmp_path / 'keep.csv'}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert {"test/f1_macro", "test_full/f1_macro", "test/acc", "test_full/acc"} <= set(metrics)
    assert {"test/phylum_acc", "test_full/phylum_acc"} <= set(metrics)
    report = pd.read_csv(tmp_path / "run" / "classification_report.csv")
    filtered_test = pd.read_csv(tmp_path / "run" / "split" / "test.csv")
    kept = set(pd.read_csv(tmp_path / "keep.csv")["file_path"])
    assert report["support"].sum() == filtered_test["file_path"].isin(kept).sum()


@pytest.mark.parametrize("content", ["", "p_animal\n0.5\n"])  # empty; no "unreadable" column
def test_a_broken_score_cache_is_scored_again(tmp_path, caplog, content):
    from src.models.zeroshot import CACHE_DIR, cached_scores, store_scores

    (tmp_path / CACHE_DIR).mkdir()
    (tmp_path / CACHE_DIR / "k.csv").write_text(content)
    assert cached_scores(tmp_path, "k") is None
    assert "Ignoring the CLIP score cache" in caplog.text
    frame = pd.DataFrame({"file_path": ["a.jpg"], "p_animal": [0.9], "unreadable": [""]})
    store_scores(tmp_path, "k", frame)
    pd.testing.assert_frame_equal(cached_scores(tmp_path, "k"), frame)
