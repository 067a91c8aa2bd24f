import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.data.schema import COLUMNS, FILTERED_INDEX, read_index, read_reference_index
from src.data.split import min_class_size, stratified_split
from src.data.synthetic import (
    DONE_FILE,
    TRUTH_FILE,
    ensure_synthetic,
    family_styles,
    select_rows,
    species_styles,
    synthetic_dir_name,
    write_synthetic,
)

PATH_PATTERN = re.compile(r"^[a-z]+_[a-z]+/\d+_\d+_eol-full-size-copy\.jpg$")


def test_full_scale_has_the_real_families_and_counts():
    rows = select_rows("full")
    real = read_reference_index()
    assert len(rows) == 11_983
    assert rows["family"].value_counts().to_dict() == real["family"].value_counts().to_dict()


def test_small_scale_keeps_real_counts_and_every_phylum():
    rows = select_rows("small")
    real = read_reference_index()["family"].value_counts()
    assert rows["family"].nunique() == 24
    assert rows["phylum"].nunique() == 5
    counts = rows["family"].value_counts()
    assert counts.to_dict() == real[counts.index].to_dict()
    assert rows["family"].value_counts().max() == 300  # the imbalance is kept


def test_round_trip_in_the_real_format(tiny_source):
    frame = read_index(tiny_source / "metadata.csv")
    assert tuple(frame.columns) == COLUMNS
    assert frame["file_path"].map(PATH_PATTERN.match).all()
    for row in frame.itertuples():
        name = f"{row.eol_content_id}_{row.eol_page_id}_eol-full-size-copy.jpg"
        assert row.file_path == f"{row.phylum}_{row.family}/{name}"
    real = read_reference_index().set_index("file_path")
    assert frame["file_path"].isin(real.index).all()
    for rel in frame["file_path"]:
        with Image.open(tiny_source / rel) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert 28 <= max(image.size) <= 80


def test_outliers_are_about_fifteen_percent_and_recorded(tmp_path):
    root = write_synthetic(tmp_path, scale="small", sizes=(24, 32), progress=False)
    truth = pd.read_csv(root / TRUTH_FILE)
    share = (truth["kind"] != "animal").mean()
    assert 0.11 < share < 0.19
    assert set(truth["kind"]) == {"animal", "text", "blank", "map"}
    # the oracle "only animals" index: exactly the animal rows, in the normal format
    kept = pd.read_csv(root / FILTERED_INDEX)
    assert tuple(kept.columns) == COLUMNS
    assert set(kept["file_path"]) == set(truth.loc[truth["kind"] == "animal", "file_path"])


def test_deterministic_given_a_seed_whatever_the_workers(tmp_path):
    def write(name: str, seed: int, workers: int) -> Path:
        return write_synthetic(
            tmp_path / name, "tiny", seed, (32, 40), progress=False, workers=workers
        )

    a, b, c = write("a", 3, 1), write("b", 3, 2), write("c", 4, 1)
    paths = pd.read_csv(a / "metadata.csv")["file_path"]
    assert all((a / rel).read_bytes() == (b / rel).read_bytes() for rel in paths)
    assert pd.read_csv(a / TRUTH_FILE).equals(pd.read_csv(b / TRUTH_FILE))
    assert (a / paths[5]).read_bytes() != (c / paths[5]).read_bytes()


def test_families_look_different():
    styles = family_styles([f"f{i}" for i in range(202)])
    assert len(set(styles.values())) == 202


def test_family_pattern_is_measurable(tiny_source):
    """Mean hue of animal images separates families: a nearest-centroid check."""
    frame = pd.read_csv(tiny_source / "metadata.csv")
    truth = pd.read_csv(tiny_source / TRUTH_FILE)
    frame = frame[truth["kind"].to_numpy() == "animal"]

    def feature(rel):
        array = np.asarray(Image.open(tiny_source / rel).convert("HSV"), dtype=float)
        saturated = array[..., 1] > 140
        angle = array[..., 0][saturated] / 255 * 2 * np.pi
        return np.array([np.cos(angle).mean(), np.sin(angle).mean()])

    features = np.stack([feature(p) for p in frame["file_path"]])
    labels = frame["family"].to_numpy()
    centroids = {f: features[labels == f].mean(0) for f in np.unique(labels)}
    names = list(centroids)
    predicted = [
        names[int(np.argmin([np.linalg.norm(x - centroids[n]) for n in names]))] for x in features
    ]
    assert (np.array(predicted) == labels).mean() > 0.5  # chance is 1/6


def test_ensure_writes_once_and_refuses_other_settings(tmp_path):
    root = ensure_synthetic(tmp_path / "syn", scale="tiny", sizes=(24, 32))
    marker = (root / DONE_FILE).stat().st_mtime_ns
    ensure_synthetic(tmp_path / "syn", scale="tiny", sizes=(24, 32))
    assert (root / DONE_FILE).stat().st_mtime_ns == marker
    assert not list(tmp_path.glob(".syn.tmp-*"))
    with pytest.raises(FileExistsError, match="other settings"):
        ensure_synthetic(tmp_path / "syn", scale="tiny", seed=1, sizes=(24, 32))


def test_cli(tmp_path, capsys):
    from src.data.synthetic import main

    main(["--out", str(tmp_path / "cli"), "--scale", "tiny", "--size", "24", "32"])
    assert "images of 6 families" in capsys.readouterr().out


# ---- species targets ------------------------------------------------------------------
def test_family_level_rows_do_not_depend_on_the_target():
    for scale in ("tiny", "small"):
        assert select_rows(scale, "phylum").equals(select_rows(scale))
    assert select_rows("small", "species").equals(select_rows("small"))
    assert (
        synthetic_dir_name("tiny", 0, [40, 56], target="family") == "synthetic-tiny-seed0-40to56px"
    )
    assert synthetic_dir_name("tiny", 0, [40, 56], 0.15, "species").endswith("40to56px-species")


def test_tiny_species_keeps_whole_species_in_every_family():
    rows = select_rows("tiny", "species")
    families = select_rows("tiny")["family"].unique()
    assert sorted(rows["family"].unique()) == sorted(families)
    per_family = rows.groupby("family")["eol_page_id"].nunique()
    assert per_family.min() >= 2 and per_family.max() == 3  # several species in each
    sizes = rows["eol_page_id"].value_counts()
    assert (sizes == 12).all() and sizes.min() >= min_class_size(0.1, 0.1)
    parts = stratified_split(rows, target="species")
    for name in ("train", "val", "test"):
        assert parts[name]["species"].nunique() == len(sizes), name


def test_small_species_split_has_every_species_everywhere():
    parts = stratified_split(select_rows("small", "species"), target="species")
    assert {parts[name]["species"].nunique() for name in parts} == {76}


def test_species_of_a_family_look_different():
    rows = read_reference_index()
    styles = species_styles(rows)
    assert len(styles) == 400
    for _, group in rows.groupby("family"):
        looks = {styles[int(page)] for page in group["eol_page_id"].unique()}
        assert len(looks) == group["eol_page_id"].nunique()  # up to 10 species a family
    first = rows.sort_values("eol_page_id").drop_duplicates("family")
    family = family_styles(sorted(rows["family"].unique()))
    for row in first.itertuples():  # the first species of a family: the family's own look
        assert styles[row.eol_page_id] == (*family[row.family], 0)


def test_species_set_is_its_own_set(tmp_path):
    family = ensure_synthetic(tmp_path / "family", scale="tiny", sizes=(24, 32))
    species = ensure_synthetic(tmp_path / "species", scale="tiny", sizes=(24, 32), target="species")
    assert "level" not in json.loads((family / DONE_FILE).read_text())  # as it always was
    assert json.loads((species / DONE_FILE).read_text())["level"] == "species"
    with pytest.raises(FileExistsError, match="other settings"):
        ensure_synthetic(tmp_path / "family", scale="tiny", sizes=(24, 32), target="species")
    frame = read_index(species / "metadata.csv")
    assert tuple(frame.columns) == COLUMNS and frame["eol_page_id"].nunique() == 16
