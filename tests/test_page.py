"""predictions.html (src/evaluation/page.py): every input listed; filters in a real browser."""

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from src.evaluation.page import write_predictions_page
from tests.helpers import embedded_rows

EVIL = "</script><b>bold</b>"  # a class name must not end the page's script or add markup


def predictions(folder: Path) -> pd.DataFrame:
    """A predict table: two answered images, one flagged out of scope, one unreadable."""
    folder.mkdir()
    for name, colour in (("bee.png", (200, 160, 20)), ("coral.png", (240, 120, 120))):
        Image.new("RGB", (60, 40), colour).save(folder / name)
    (folder / "blank.png").write_bytes(b"not a png")
    (folder / "night.png").write_bytes((folder / "bee.png").read_bytes())
    rows = [
        ("bee.png", "ok", "apidae", "family", "apidae", 0.91, "formicidae", 0.05, 1, False),
        ("coral.png", "ok", "cnidaria", "phylum", "acroporidae", 0.55, EVIL, 0.40, 2, False),
        ("night.png", "ok", "unknown", "", "apidae", 0.30, "formicidae", 0.25, 4, True),
        ("blank.png", "not_an_image", None, None, None, None, None, None, None, None),
    ]
    columns = ["path", "status", "answer", "answer_rank", "top1", "p1", "top2", "p2", "set_size"]
    table = pd.DataFrame([r[:-1] for r in rows], columns=columns)
    table["path"] = [str(folder / r[0]) for r in rows]
    table["top1_phylum"] = ["arthropoda", "cnidaria", "arthropoda", None]
    table["out_of_scope"] = [r[-1] for r in rows]
    table["uncertain"] = [False, True, True, None]
    return table


def test_the_page_lists_every_input_with_its_thumbnail_and_flags(tmp_path):
    table = predictions(tmp_path / "photos")
    page = write_predictions_page(table, tmp_path / "predictions.html", 10**8)
    rows = embedded_rows(page)
    assert [r["path"] for r in rows] == list(table["path"])  # every input, in order
    assert [bool(r["thumb"]) for r in rows] == [True, True, True, False]
    assert rows[0]["thumb"].startswith("data:image/jpeg;base64,")  # no other file needed
    assert rows[1]["top"][1][0] == EVIL and rows[1]["rank"] == "phylum"
    assert rows[2]["out_of_scope"] and rows[3]["status"] == "not_an_image"
    assert "<b>bold</b>" not in page.read_text()  # the name stays text
    assert not list(tmp_path.glob("*.tmp*"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered(page: Path, address: str = "") -> str:
    """The page's DOM after its script ran, in headless Chromium."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            f"{page.as_uri()}{address}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def shown(dom: str) -> list[str]:
    """The paths of the rows the page shows, top to bottom."""
    rows = re.findall(r'<tr data-path="([^"]*)"[^>]*?( hidden="")?>', dom)
    return [Path(path).name for path, hidden in rows if not hidden]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_the_page_sorts_and_filters_in_a_real_browser(tmp_path):
    page = write_predictions_page(
        predictions(tmp_path / "photos"), tmp_path / "predictions.html", 10**8
    )
    dom = rendered(page)
    assert shown(dom) == ["bee.png", "coral.png", "night.png", "blank.png"]
    assert "4 of 4 images" in dom and "unreadable: not_an_image" in dom
    assert "&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in dom  # shown as text
    assert shown(rendered(page, "#sort=p1&desc=1")) == [
        "bee.png",
        "coral.png",
        "night.png",
        "blank.png",
    ]
    assert shown(rendered(page, "#sort=p1")) == ["blank.png", "night.png", "coral.png", "bee.png"]
    assert shown(rendered(page, "#min=0.5")) == ["bee.png", "coral.png"]
    assert shown(rendered(page, "#q=cnidaria")) == ["coral.png"]
    assert shown(rendered(page, "#flag=out_of_scope")) == ["night.png"]
    assert shown(rendered(page, "#flag=none")) == ["bee.png"]
    assert "1 of 4 images" in rendered(page, "#q=apidae&flag=uncertain")
