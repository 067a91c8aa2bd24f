import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from src.data import images
from src.data.datamodule import BAD_IMAGES_FILE, RareSpeciesDataModule
from src.data.schema import DataFormatError
from src.data.synthetic import write_synthetic
from src.errors import ConfigError
from src.evaluation.answers import trust_metric_names
from src.models.classifier import SpeciesClassifier
from src.models.metrics import TEST_KEYS
from tests.helpers import (
    TINY_DATA,
    compose_config,
    damage_jpeg_body,
    garbage_idat_png,
    jpeg_with_trailing_bytes,
    run_module,
    tiny_trainer,
)


def make(root, tmp_path, **kwargs) -> RareSpeciesDataModule:
    options = {"image_size": 32, "num_workers": 0, "output_dir": str(tmp_path / "run"), **kwargs}
    return RareSpeciesDataModule(root=str(root), **options)


def rows_of(root, tmp_path, **kwargs) -> dict[str, pd.DataFrame]:
    """The named row sets a data module selects (its setup reads, splits and scans)."""
    dm = make(root, tmp_path, **kwargs)
    dm.setup()
    return dm.rows


def test_batches_labels_and_sorted_class_names(tiny_root, tmp_path):
    dm = make(tiny_root, tmp_path, batch_size=8)
    dm.setup("fit")
    frame = pd.read_csv(tiny_root / "metadata.csv")
    assert dm.class_names == sorted(frame["family"].unique())
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0  # baseline: rescale to [0, 1]
    assert labels.max() < dm.num_classes
    test = dm.datasets["test"]
    first = dm.rows["test"].iloc[0]
    assert dm.class_names[test.labels[0]] == first["family"]


def test_phylum_target(tiny_root, tmp_path):
    dm = make(tiny_root, tmp_path, target="phylum")
    dm.setup()
    assert dm.class_names == sorted(pd.read_csv(tiny_root / "metadata.csv")["phylum"].unique())


def test_model_normalisation_is_applied(tiny_root, tmp_path):
    dm = make(tiny_root, tmp_path)
    dm.setup("fit")
    plain = dm.datasets["val"][0][0]
    config = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "interpolation": "bilinear"}
    dm.use_data_config(config)
    dm.setup("fit")
    normalised = dm.datasets["val"][0][0]
    assert normalised.min() < 0
    assert torch.allclose(normalised * 0.25 + 0.5, plain, atol=1e-6)
    dm.use_data_config({**config, "interpolation": "bicubic"})
    dm.setup("fit")
    assert not torch.equal(dm.datasets["val"][0][0], normalised)


@pytest.mark.parametrize("variant", ["contrast", "saturation", "grayscale"])
def test_preprocess_variants(tiny_root, tmp_path, variant):
    original = make(tiny_root, tmp_path)
    changed = make(tiny_root, tmp_path, preprocess=variant)
    original.setup("fit")
    changed.setup("fit")
    a, b = original.datasets["val"][0][0], changed.datasets["val"][0][0]
    assert b.shape == (3, 32, 32) and not torch.equal(a, b)
    if variant == "grayscale":
        assert torch.equal(b[0], b[1]) and torch.equal(b[1], b[2])
    if variant == "contrast":
        assert b.std() > a.std()


def test_split_is_written_next_to_the_run_and_reused(tiny_root, tmp_path):
    first = make(tiny_root, tmp_path)
    first.setup("fit")
    split_dir = tmp_path / "run" / "split"
    saved = {s: pd.read_csv(split_dir / f"{s}.csv") for s in ("train", "val", "test")}
    assert list(saved["test"]["file_path"]) == list(first.rows["test"]["file_path"])
    again = rows_of(tiny_root, tmp_path, split={"seed": 5})  # the saved split wins over the seed
    assert list(again["test"]["file_path"]) == list(saved["test"]["file_path"])
    elsewhere = rows_of(tiny_root, tmp_path / "other", split_dir=str(tmp_path / "run" / "split"))
    assert list(elsewhere["val"]["file_path"]) == list(saved["val"]["file_path"])
    assert (tmp_path / "other" / "run" / "split" / "val.csv").is_file()


def test_state_dict_names_the_classes(tiny_root, tmp_path):
    dm = make(tiny_root, tmp_path)
    dm.setup()
    state = dm.state_dict()
    assert state["class_names"] == dm.class_names and state["target"] == "family"
    with pytest.raises(ValueError, match="other classes"):
        dm.load_state_dict({**state, "class_names": ["x"]})


def test_missing_root_metadata_and_columns_are_explained(tiny_root, tmp_path):
    with pytest.raises(DataFormatError, match=r"does not exist: run `python -m src.data.download"):
        make(tmp_path / "nowhere", tmp_path).setup()
    (tiny_root / "metadata.csv").rename(tiny_root / "other.csv")
    with pytest.raises(DataFormatError, match=r"No metadata.csv in .*data=synthetic"):
        make(tiny_root, tmp_path).setup()
    frame = pd.read_csv(tiny_root / "other.csv").drop(columns=["family"])
    frame.to_csv(tiny_root / "metadata.csv", index=False)
    with pytest.raises(DataFormatError, match="lacks the column"):
        make(tiny_root, tmp_path).setup()


def test_bad_options_are_refused(tiny_root, tmp_path):
    for option in (
        {"imbalance": "smote"},
        {"preprocess": "sepia"},
        {"on_bad_image": "ignore"},
        {"target": "colour"},
    ):
        with pytest.raises(ValueError, match="is not one of"):
            make(tiny_root, tmp_path, **option)


def test_undecodable_images_are_skipped_listed_and_training_completes(tiny_root, tmp_path):
    train = rows_of(tiny_root, tmp_path / "probe")["train"]["file_path"].tolist()
    garbage_idat_png(tiny_root / train[0])
    damage_jpeg_body(tiny_root / train[1])
    jpeg_with_trailing_bytes(tiny_root / train[2])  # readable: must stay in
    dm = make(tiny_root, tmp_path, on_bad_image="skip", batch_size=16)
    dm.setup("fit")
    model = SpeciesClassifier({"_target_": "src.models.baseline.BaselineCNN"}, dm.class_names)
    trainer = tiny_trainer(limit_train_batches=None)
    trainer.fit(model, datamodule=dm)  # every training image is read once
    listed = pd.read_csv(tmp_path / "run" / BAD_IMAGES_FILE)
    assert dict(zip(listed["file_path"], listed["reason"])) == {
        train[0]: "corrupt",
        train[1]: "corrupt",
    }
    assert trainer.state.finished and trainer.global_step == -(-(len(train) - 2) // 16)


def test_image_verdicts_are_reused_until_a_file_or_setting_changes(
    tiny_root, tmp_path, monkeypatch
):
    decoded = []
    real_load = images.load_rgb

    def counting_load(path, *args, **kwargs):
        decoded.append(path)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(images, "load_rgb", counting_load)

    def usable(**kwargs) -> list[str]:
        rows = rows_of(tiny_root, tmp_path, on_bad_image="skip", **kwargs)
        return [p for split in rows.values() for p in split["file_path"]]

    total = len(usable())
    assert len(decoded) == total
    assert len(usable()) == total and len(decoded) == total  # nothing decoded again
    changed = usable()[0]
    damage_jpeg_body(tiny_root / changed)
    assert len(usable()) == total - 1
    assert [Path(p).name for p in decoded[total:]] == [Path(changed).name]
    assert pd.read_csv(tmp_path / "run" / BAD_IMAGES_FILE)["file_path"].tolist() == [changed]
    usable(max_image_pixels=10**6)
    assert len(decoded) == 2 * total + 1  # another setting: every file judged again


@pytest.mark.parametrize(
    "override, allowed",
    [
        ("data.batch_size=0", ">= 1"),
        ("data.image_size=0", ">= 1"),
        ("data.image_size=-32", ">= 1"),
        ("data.num_workers=-1", ">= 0"),
    ],
)
def test_train_refuses_bad_data_numbers_in_one_line(tiny_root, tmp_path, override, allowed):
    result = run_module(
        tmp_path,
        "src.train",
        "data=rarespecies",
        f"data.root={tiny_root}",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        override,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: {override} is not allowed: use a whole number {allowed}." in result.stderr


# ---- the target: any rank of the index ---------------------------------------------------
@pytest.fixture(scope="module")
def species_source(tmp_path_factory) -> Path:
    """The tiny set made for data.target=species: 16 whole species of 12 images, 6 families."""
    root = tmp_path_factory.mktemp("species_source")
    return write_synthetic(root, "tiny", 0, (40, 56), progress=False, target="species")


def test_species_target_falls_back_to_eol_page_id(species_source, tmp_path):
    dm = make(species_source, tmp_path, target="species")
    dm.setup()
    pages = pd.read_csv(species_source / "metadata.csv")["eol_page_id"].astype(str)
    assert dm.class_names == sorted(pages.unique()) and dm.num_classes == 16
    for name in ("train", "val", "test"):  # stratified: every species everywhere
        assert dm.rows[name]["species"].nunique() == 16
        assert dm.class_names[dm.datasets[name].labels[0]] == dm.rows[name]["species"].iloc[0]
    saved = pd.read_csv(tmp_path / "run" / "split" / "test.csv")
    assert saved["species"].astype(str).tolist() == dm.rows["test"]["species"].tolist()
    assert rows_of(species_source, tmp_path, target="species")["val"].equals(dm.rows["val"])
    state = dm.state_dict()
    assert state["target"] == "species" and set(state["phylum"]) == set(dm.class_names)
    assert state["names"] == {}  # the shipped index has no scientific or common names


def test_species_column_and_names_are_used_when_present(species_source, tmp_path):
    root = Path(shutil.copytree(species_source, tmp_path / "root"))
    frame = pd.read_csv(root / "metadata.csv")
    frame["species"] = frame["family"] + " sp" + frame["eol_page_id"].astype(str).str[-2:]
    frame["sciName"] = frame["species"].str.capitalize()
    frame["common"] = "rare " + frame["family"]
    frame.to_csv(root / "metadata.csv", index=False)
    dm = make(root, tmp_path, target="species")
    dm.setup()
    assert dm.class_names == sorted(frame["species"].unique())
    name = dm.class_names[0]
    assert dm.state_dict()["names"][name] == f"{name.capitalize()} (rare {name.split()[0]})"


def test_family_target_of_a_species_set_and_phylum_of_each_class(species_source, tmp_path):
    dm = make(species_source, tmp_path)
    dm.setup()
    frame = pd.read_csv(species_source / "metadata.csv")
    assert dm.class_names == sorted(frame["family"].unique())
    assert "species" not in dm.index.columns  # added only for a species target
    assert dm.state_dict()["phylum"] == dict(zip(frame["family"], frame["phylum"]))
    phyla = make(species_source, tmp_path / "phyla", target="phylum")
    phyla.setup()
    assert phyla.state_dict()["phylum"] == {}  # the classes are the phyla


def test_a_rank_the_index_lacks_is_one_sentence_at_setup(tiny_root, tmp_path):
    dm = make(tiny_root, tmp_path, target="genus")  # a rank: the constructor takes it
    with pytest.raises(ConfigError) as err:
        dm.setup()
    message = str(err.value)
    assert "\n" not in message and message.endswith(".")
    assert "data.target='genus' is not a column of this index, whose ranks are " in message
    assert "kingdom, phylum, family, species" in message


def test_train_on_species_end_to_end(tmp_path):
    """python -m src.train debug=tiny data.target=species trainer.max_epochs=1, in-process."""
    from src.runs.cli import register_resolvers
    from src.train import train

    register_resolvers()
    run = tmp_path / "run"
    cfg = compose_config(
        "train",
        *TINY_DATA,
        "data.target=species",
        "trainer.max_epochs=1",
        "model.hierarchy_loss_weight=0.5",  # species within families within phyla
        "logger=none",
        f"paths.output_dir={run}",
    )
    assert cfg.data.root.endswith("-species")  # the species-level synthetic set
    train(cfg)
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert set(metrics) >= set(TEST_KEYS)
    assert {f"test/{name}" for name in trust_metric_names("species")} <= set(metrics)
    report = pd.read_csv(run / "classification_report.csv", dtype={"class": str})
    assert {"family", "phylum"} <= set(report.columns)
    pages = pd.read_csv(Path(cfg.data.root) / "metadata.csv")["eol_page_id"].astype(str)
    assert sorted(report["class"]) == sorted(pages.unique())  # 16 species
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["class_names"] == sorted(pages.unique())
    assert list(checkpoint["hyper_parameters"]["taxonomy"]) == ["family", "phylum"]
    assert "calibration" in checkpoint
