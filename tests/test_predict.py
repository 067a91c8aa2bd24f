"""python -m src.predict: a folder or a CSV of photos, unreadable files listed, not fatal."""

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from src.models.classifier import load_classifier
from tests.helpers import embedded_rows, one_error_line, run_module


def photos(tiny_source: Path, folder: Path) -> Path:
    """Real images in sub-folders, a corrupt one, a text file named .jpg and a huge one."""
    frame = pd.read_csv(tiny_source / "metadata.csv").head(5)
    for rel in frame["file_path"]:
        target = folder / "field" / Path(rel).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((tiny_source / rel).read_bytes())
    (folder / "corrupt.jpg").write_bytes((tiny_source / frame["file_path"][0]).read_bytes()[:200])
    (folder / "notes.jpg").write_text("not a photo")
    Image.new("RGB", (400, 300)).save(folder / "huge.png")
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    return folder


def test_predict_a_folder_and_a_csv(checkpoint, tiny_source, tmp_path):
    folder = photos(tiny_source, tmp_path / "photos")
    result = run_module(
        tmp_path,
        "src.predict",
        f"ckpt_path={checkpoint}",
        f"inputs={folder}",
        "top_k=3",
        f"output={tmp_path / 'p.csv'}",
        "num_workers=0",
        "max_image_pixels=100000",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 8 and "readme.txt" not in " ".join(table["path"])
    status = dict(zip(table["path"].map(lambda p: Path(p).name), table["status"]))
    assert status["corrupt.jpg"] in ("truncated", "not_an_image")
    assert status["notes.jpg"] == "not_an_image" and status["huge.png"] == "too_large"
    ok = table[table["status"] == "ok"]
    assert len(ok) == 5 and {"top1", "p1", "top3", "p3", "top1_phylum", "uncertain"} <= set(table)
    assert (ok["p1"] >= ok["p2"]).all() and (ok["p2"] >= ok["p3"]).all()
    assert "5 images" not in result.stdout and "8 images, 3 unreadable" in result.stdout
    page = embedded_rows(tmp_path / "p.html")  # beside the CSV: every input, with its status
    assert [(r["path"], r["status"]) for r in page] == list(zip(table["path"], table["status"]))
    names = load_classifier(checkpoint).class_names
    assert set(ok["top1"]) <= set(names)
    listing = tmp_path / "list.csv"
    pd.DataFrame({"path": [f"photos/field/{p.name}" for p in (folder / "field").iterdir()]}).to_csv(
        listing, index=False
    )
    again = run_module(
        tmp_path,
        "src.predict",
        f"ckpt_path={checkpoint}",
        f"inputs={listing}",
        "num_workers=0",
        f"hydra.run.dir={tmp_path / 'run2'}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (pd.read_csv(tmp_path / "run2" / "predictions.csv")["status"] == "ok").sum() == 5


def test_any_target_names_the_phylum_and_the_species(tiny_source):
    from src.data.transforms import ImagePipeline
    from src.models.classifier import SpeciesClassifier
    from src.predict import class_phylum, predict

    model = SpeciesClassifier({"_target_": "src.models.baseline.BaselineCNN"}, ["1", "2"])
    species = {"target": "species", "phylum": {"1": "chordata", "2": "mollusca"}}
    assert class_phylum(model, species) == species["phylum"]
    assert class_phylum(model, {"target": "phylum", "phylum": {}}) == {"1": "1", "2": "2"}
    assert class_phylum(model, {})["accipitridae"] == "chordata"  # an old family checkpoint
    paths = [tiny_source / p for p in pd.read_csv(tiny_source / "metadata.csv")["file_path"][:3]]
    pipeline = ImagePipeline(image_size=32, variant="original", **model.data_config)
    readable = {"1": "Genus one (an animal)", "2": "Genus two (another)"}
    reading = {"batch_size": 4, "num_workers": 0, "device": "cpu"}
    table = predict(model, pipeline, paths, 2, species["phylum"], readable, **reading)
    assert list(table["top1_name"]) == [readable[c] for c in table["top1"]]
    assert list(table["top1_phylum"]) == [species["phylum"][c] for c in table["top1"]]
    assert "top1_name" not in predict(model, pipeline, paths[:1], 2, **reading)


def test_a_bad_alpha_is_one_sentence(checkpoint, tiny_source, tmp_path):
    image = next(tiny_source.rglob("*.jpg"))
    result = run_module(
        tmp_path,
        "src.predict",
        f"ckpt_path={checkpoint}",
        f"inputs={image}",
        "alpha=1.5",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    line = one_error_line(result)
    assert "alpha=1.5 is not allowed: use a number between 0 and 1" in line
    assert not (tmp_path / "run" / "predictions.csv").exists()


def test_the_clip_animal_check_flags_what_it_doubts(
    checkpoint, tiny_source, tmp_path, clip_configs
):
    """animal_filter=clip: CLIP's p(animal) per image (a random tiny model here: the threshold's
    two ends decide, whatever its scores)."""
    images = [tiny_source / p for p in pd.read_csv(tiny_source / "metadata.csv")["file_path"][:3]]
    listing = tmp_path / "photos.csv"
    pd.DataFrame({"path": [str(p) for p in images]}).to_csv(listing, index=False)
    tables = {}
    for threshold in (0.0, 1.0):
        result = run_module(
            tmp_path,
            "src.predict",
            f"ckpt_path={checkpoint}",
            f"inputs={listing}",
            "num_workers=0",
            "animal_filter=clip",
            "animal_filter.model=tiny-clip",
            "animal_filter.pretrained=null",
            f"animal_filter.model_config_dir={clip_configs}",
            f"animal_filter.threshold={threshold}",
            f"hydra.run.dir={tmp_path / str(threshold)}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        tables[threshold] = pd.read_csv(tmp_path / str(threshold) / "predictions.csv")
    kept, doubted = tables[0.0], tables[1.0]
    assert kept["p_animal"].between(0, 1).all() and doubted["p_animal"].between(0, 1).all()
    assert not kept["out_of_scope"].any() and (kept["answer"] == kept["top1"]).all()
    assert doubted["out_of_scope"].all() and (doubted["answer"] == "unknown").all()


@pytest.mark.parametrize("override", ["top_k=0", "top_k=abc", "batch_size=0", "show=-1"])
def test_bad_reading_settings_are_one_sentence(checkpoint, tiny_source, tmp_path, override):
    image = next(tiny_source.rglob("*.jpg"))
    result = run_module(
        tmp_path, "src.predict", f"ckpt_path={checkpoint}", f"inputs={image}", override
    )
    assert f"{override.replace('abc', repr('abc'))} is not allowed" in one_error_line(result)
