import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from src.data.download import DownloadError, convert, main
from src.data.schema import COLUMNS, read_index, read_reference_index

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
    return snapshot, rows


def test_convert_from_the_catalog(hf_snapshot, tmp_path):
    snapshot, rows = hf_snapshot
    out = tmp_path / "out"
    converted = convert(snapshot, out)
    frame = read_index(out / "metadata.csv")
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == 12  # the duplicate is dropped
    assert list(frame["file_path"]) == list(rows["file_path"])
    assert list(frame["family"]) == list(rows["family"])  # lower case, as the real index
    assert all((out / p).is_file() for p in converted["file_path"])


def test_convert_with_the_reference_index_keeps_its_ids(hf_snapshot, tmp_path):
    snapshot, rows = hf_snapshot
    out = tmp_path / "out"
    convert(snapshot, out, index=rows, mode="copy")
    frame = pd.read_csv(out / "metadata.csv")
    assert frame.to_dict("records") == rows[list(COLUMNS)].to_dict("records")


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
