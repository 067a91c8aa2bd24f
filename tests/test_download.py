import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from src.data.download import EXTRA_COLUMNS, DownloadError, convert, main
from src.data.schema import COLUMNS, RANKS, available_ranks, read_index, read_reference_index

TAXA = ["class", "order", "family", "genus", "species"]


@pytest.fixture
def hf_snapshot(tmp_path) -> tuple[Path, pd.DataFrame]:
    """A small snapshot in the hub's layout, made from 12 real rows (plus one duplicate)."""
    real = read_reference_index()
    rows = real.groupby("phylum").head(3).head(12).reset_index(drop=True)
    snapshot = tmp_path / "snapshot"
    catalog = []
    for i, row in rows.iterrows():
        taxa = {
            "class": f"class{i % 2}",
            "order": "order",
            "family": row.family.capitalize(),
            "genus": f"Genus{i}",
            "species": "species",
        }
        folder = "-".join(["Animalia", row.phylum.capitalize()] + [taxa[t] for t in TAXA])
        name = f"{row.eol_content_id}_{row.eol_page_id}_eol_full-size-copy.jpg"
        path = snapshot / "dataset" / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 16), (i * 20, 100, 50)).save(path, "JPEG")
        catalog.append(
            {
                "rarespecies_id": row.rare_species_id,
                "eol_content_id": row.eol_content_id,
                "eol_page_id": row.eol_page_id,
                "kingdom": "Animalia",
                "phylum": row.phylum.capitalize(),
                **taxa,
                "sciName": f"Genus{i} species",
                "common": f"animal {i}",
            }
        )
    catalog.append(dict(catalog[0]))  # the hub catalog has duplicates
    (snapshot / "metadata").mkdir()
    catalog_file = snapshot / "metadata" / "rarespecies-catalog.csv"
    pd.DataFrame(catalog).to_csv(catalog_file, index=False)
    header, rest = catalog_file.read_text().split("\n", 1)
    catalog_file.write_text(header.replace(",", ", ") + "\n" + rest)  # the hub's header style
    write_licenses(snapshot, rows)
    return snapshot, rows


def write_licenses(snapshot: Path, rows: pd.DataFrame) -> None:
    """The hub's metadata/licenses.csv with the true MD5 of every image of the snapshot."""
    records = []
    for path in sorted((snapshot / "dataset").rglob("*.jpg")):
        content, page = path.name.split("_")[:2]
        row = rows[rows["eol_content_id"].astype(str) == content].iloc[0]
        records.append(
            {
                "rarespecies_id": row.rare_species_id,
                "eol_content_id": content,
                "eol_page_id": page,
                "md5": hashlib.md5(path.read_bytes()).hexdigest(),
                "medium_source_url": "https://example.org/x.jpg",
                "eol_full_size_copy_url": "https://example.org/y.jpg",
                "license_name": "cc-by-4.0",
                "copyright_owner": "someone",
                "license_link": "https://creativecommons.org/licenses/by/4.0/",
                "title": "a photo",
            }
        )
    pd.DataFrame(records).to_csv(snapshot / "metadata" / "licenses.csv", index=False)


def damage_one_image(snapshot: Path) -> str:
    """Rewrite one snapshot image with other (still valid) pixels; its file name."""
    path = sorted((snapshot / "dataset").rglob("*.jpg"))[3]
    Image.new("RGB", (20, 16), (1, 2, 3)).save(path, "JPEG")
    return path.name.replace("_eol_full-size-copy", "_eol-full-size-copy")


def test_files_matching_licenses_md5_convert_without_warnings(hf_snapshot, tmp_path, caplog):
    snapshot, _ = hf_snapshot
    convert(snapshot, tmp_path / "out")
    assert len(read_index(tmp_path / "out" / "metadata.csv")) == 12
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_file_with_a_wrong_md5_stops_the_conversion(hf_snapshot, tmp_path):
    snapshot, _ = hf_snapshot
    name = damage_one_image(snapshot)
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match=rf"1 of 12 images do not match their MD5.*{name}"):
        convert(snapshot, out)
    assert not (out / "metadata.csv").exists()
    assert Path(pd.read_csv(out / "bad_md5.csv")["file_path"][0]).name == name


def test_cli_wrong_md5_is_one_line_and_exit_1(hf_snapshot, tmp_path, capsys):
    snapshot, _ = hf_snapshot
    damage_one_image(snapshot)
    with pytest.raises(SystemExit) as info:
        main(["--out", str(tmp_path / "out"), "--from", str(snapshot), "--rows", "catalog"])
    assert info.value.code == 1
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "--on-bad-md5 skip" in message


def test_skip_leaves_out_and_lists_wrong_md5(hf_snapshot, tmp_path):
    snapshot, _ = hf_snapshot
    name = damage_one_image(snapshot)
    out = tmp_path / "out"
    convert(snapshot, out, on_bad_md5="skip")
    frame = read_index(out / "metadata.csv")
    assert len(frame) == 11 and name not in " ".join(frame["file_path"])
    listed = pd.read_csv(out / "bad_md5.csv")
    assert [Path(p).name for p in listed["file_path"]] == [name]
    assert listed["expected_md5"][0] != listed["actual_md5"][0]


def test_missing_licenses_warns_that_files_are_unverified(hf_snapshot, tmp_path, caplog):
    snapshot, _ = hf_snapshot
    (snapshot / "metadata" / "licenses.csv").unlink()
    damage_one_image(snapshot)  # cannot be noticed without licenses.csv
    convert(snapshot, tmp_path / "out")
    assert len(read_index(tmp_path / "out" / "metadata.csv")) == 12
    assert "licenses.csv is missing: the 12 images are unverified" in caplog.text


def test_convert_from_the_catalog(hf_snapshot, tmp_path):
    snapshot, rows = hf_snapshot
    out = tmp_path / "out"
    converted = convert(snapshot, out)
    frame = read_index(out / "metadata.csv")
    assert tuple(frame.columns) == COLUMNS + EXTRA_COLUMNS  # every rank of the catalog
    assert len(frame) == 12  # the duplicate is dropped
    assert list(frame["file_path"]) == list(rows["file_path"])
    assert list(frame["family"]) == list(rows["family"])  # lower case, as the real index
    assert all((out / p).is_file() for p in converted["file_path"])


def test_convert_with_the_reference_index_keeps_its_ids(hf_snapshot, tmp_path):
    snapshot, rows = hf_snapshot
    out = tmp_path / "out"
    convert(snapshot, out, index=rows, mode="copy")
    frame = pd.read_csv(out / "metadata.csv")
    assert frame[list(COLUMNS)].to_dict("records") == rows[list(COLUMNS)].to_dict("records")
    assert list(frame.columns[len(COLUMNS) :]) == list(EXTRA_COLUMNS)


@pytest.mark.parametrize("source", ["catalog", "reference"])
def test_every_rank_of_the_catalog_is_kept(hf_snapshot, tmp_path, source):
    snapshot, rows = hf_snapshot
    out = tmp_path / "out"
    convert(snapshot, out, index=rows if source == "reference" else None)
    frame = read_index(out / "metadata.csv")
    assert list(frame["class"]) == [f"class{i % 2}" for i in range(12)]  # lower case
    assert set(frame["order"]) == {"order"}
    assert list(frame["genus"]) == [f"genus{i}" for i in range(12)]
    # the catalog's species is the epithet: with its genus it names one species
    assert list(frame["species"]) == [f"genus{i} species" for i in range(12)]
    assert list(frame["sciName"]) == [f"Genus{i} species" for i in range(12)]
    assert list(frame["common"]) == [f"animal {i}" for i in range(12)]
    assert available_ranks(frame) == RANKS


def test_a_richer_index_trains_on_any_rank(hf_snapshot, tmp_path):
    from tests.helpers import tiny_datamodule

    snapshot, rows = hf_snapshot
    convert(snapshot, tmp_path / "out")
    families = rows["family"].nunique()
    for rank, classes in (("genus", 12), ("species", 12), ("class", 2), ("family", families)):
        dm = tiny_datamodule(tmp_path / "out", tmp_path / rank, target=rank)
        dm.load_index()
        assert dm.num_classes == classes, rank
    names = dm.state_dict()
    assert names["target"] == "family" and names["names"] == {}
    dm = tiny_datamodule(tmp_path / "out", tmp_path / "names", target="species")
    dm.load_index()
    state = dm.state_dict()
    assert state["names"]["genus3 species"] == "Genus3 species (animal 3)"
    assert state["phylum"]["genus3 species"] == rows["phylum"][3]


def test_missing_file_is_reported(hf_snapshot, tmp_path):
    snapshot, rows = hf_snapshot
    next((snapshot / "dataset").rglob("*.jpg")).unlink()
    with pytest.raises(DownloadError, match="1 of 12 images are not in"):
        convert(snapshot, tmp_path / "out")


def test_cli_from_a_snapshot(hf_snapshot, tmp_path, capsys):
    snapshot, _ = hf_snapshot
    main(["--out", str(tmp_path / "out"), "--from", str(snapshot), "--rows", "catalog"])
    assert "Wrote 12 images" in capsys.readouterr().out


def test_offline_fails_in_one_clear_sentence(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "src.data.download", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": ""},
        cwd=Path(__file__).parents[1],
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.count("\n") == 0
    assert "machine with internet access" in message and "--from DIR" in message
