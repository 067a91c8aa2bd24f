"""``predictions.html``: one self-contained page of a predict run, to look at.

Every input is a row: its thumbnail (embedded, no other file needed), the answer and its
rank, the top 3 classes with their probabilities, the phylum, and flags for uncertain
answers (not one class), out-of-scope and unreadable inputs. Clicking a column header sorts;
the boxes above filter by text (class, answer, phylum or path), by the least top
probability and by flag. The same filters can be given in the address, after ``#``:
``predictions.html#q=apidae&min=0.5&flag=uncertain&sort=p1&desc=1``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from PIL import Image

from src.data.images import BadImageError, load_rgb
from src.runs.files import write_text

PAGE_FILE = "predictions.html"
THUMBNAIL = 96  # pixels, the longer side
TOP = 3


def thumbnail_uri(path: str | Path, max_pixels: int, size: int = THUMBNAIL) -> str:
    """A small JPEG of the image as a ``data:`` URI; "" when it cannot be read."""
    try:
        array = load_rgb(Path(path), max_pixels, size)
    except BadImageError:
        return ""
    image = Image.fromarray(array)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=75)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _value(row: pd.Series, key: str):
    value = row.get(key)
    if value is None or pd.isna(value):  # NaN, and pandas' NA of whole-number columns
        return None
    return value.item() if hasattr(value, "item") else value


def page_rows(table: pd.DataFrame, thumbnails: Sequence[str]) -> list[dict]:
    """The rows the page shows: plain values, one per input, in the table's order."""
    rows = []
    for (_, row), thumb in zip(table.iterrows(), thumbnails):
        top = [
            [_value(row, f"top{k}"), _value(row, f"p{k}")]
            for k in range(1, TOP + 1)
            if _value(row, f"top{k}") is not None
        ]
        rows.append(
            {
                "path": str(row["path"]),
                "status": str(row["status"]),
                "answer": _value(row, "answer") or "",
                "rank": _value(row, "answer_rank") or "",
                "top": top,
                "p1": _value(row, "p1"),
                "phylum": _value(row, "top1_phylum") or "",
                "set_size": _value(row, "set_size"),
                "uncertain": bool(_value(row, "uncertain")),
                "out_of_scope": bool(_value(row, "out_of_scope")),
                "thumb": thumb,
            }
        )
    return rows


def predictions_page(rows: list[dict], title: str) -> str:
    """The whole page: the rows as JSON inside it, drawn and filtered by its script."""
    data = json.dumps(rows, allow_nan=False).replace("</", "<\\/")  # no early </script>
    return TEMPLATE.replace("{{TITLE}}", html.escape(title)).replace("{{DATA}}", data)


def write_predictions_page(
    table: pd.DataFrame, path: str | Path, max_pixels: int, title: str = "Predictions"
) -> Path:
    """``predictions.html`` for a predict table, written whole (temporary name, rename)."""
    thumbnails = [
        thumbnail_uri(p, max_pixels) if status == "ok" else ""
        for p, status in zip(table["path"], table["status"])
    ]
    return write_text(Path(path), predictions_page(page_rows(table, thumbnails), title))


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:middle}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}img{max-width:96px;max-height:96px}
.flag{display:inline-block;margin:1px;padding:1px 4px;border-radius:3px;font-size:80%}
.uncertain{background:#fff3c4}.out_of_scope{background:#ffd0d0}.unreadable{background:#ddd}
#controls{margin-bottom:.8em}#controls input{margin-right:1em}
</style></head><body>
<h1>{{TITLE}}</h1>
<div id="controls">
<label>Text <input id="q" type="search" placeholder="class, answer, phylum or path"></label>
<label>Top probability at least <input id="min" type="number" min="0" max="1" step="0.05"
 value="0"></label>
<label>Flag <select id="flag"><option value="">any</option><option>uncertain</option>
<option>out_of_scope</option><option>unreadable</option><option value="none">none</option>
</select></label>
<span id="count"></span>
</div>
<table><thead><tr><th></th><th data-key="path">image</th><th data-key="answer">answer</th>
<th data-key="rank">rank</th><th data-key="p1">top 3</th><th data-key="phylum">phylum of top 1</th>
<th data-key="set_size">set size</th><th data-key="flags">flags</th></tr></thead>
<tbody id="rows"></tbody></table>
<script type="application/json" id="data">{{DATA}}</script>
<script>
const rows = JSON.parse(document.getElementById("data").textContent);
const body = document.getElementById("rows");
const flagsOf = r => [r.uncertain && "uncertain", r.out_of_scope && "out_of_scope",
  r.status !== "ok" && "unreadable"].filter(Boolean);
let sortKey = null, desc = false;
function cell(tr, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content); else td.textContent = content ?? "";
  tr.appendChild(td);
  return td;
}
function draw() {
  body.textContent = "";
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.path = r.path;
    tr.dataset.p1 = r.p1 ?? "";
    const img = document.createElement("img");
    if (r.thumb) { img.src = r.thumb; img.alt = r.path; }
    cell(tr, r.thumb ? img : "");
    cell(tr, r.path.split("/").pop()).title = r.path;
    cell(tr, r.status === "ok" ? r.answer : "");
    cell(tr, r.rank);
    cell(tr, r.top.map(([c, p]) => c + " " + Number(p).toFixed(3)).join(", "));
    cell(tr, r.phylum);
    cell(tr, r.set_size);
    const flags = document.createElement("span");
    for (const f of flagsOf(r)) {
      const s = document.createElement("span");
      s.className = "flag " + f;
      s.textContent = f === "unreadable" ? "unreadable: " + r.status : f;
      flags.appendChild(s);
    }
    cell(tr, flags);
    r.tr = tr;
    body.appendChild(tr);
  }
}
function value(r, key) {
  if (key === "flags") return flagsOf(r).join(" ");
  const v = r[key];
  return v === null || v === undefined ? -Infinity : v;
}
function apply() {
  const q = document.getElementById("q").value.toLowerCase();
  const min = Number(document.getElementById("min").value) || 0;
  const flag = document.getElementById("flag").value;
  if (sortKey) {
    rows.sort((a, b) => (value(a, sortKey) > value(b, sortKey) ? 1 :
      value(a, sortKey) < value(b, sortKey) ? -1 : 0) * (desc ? -1 : 1));
    for (const r of rows) body.appendChild(r.tr);
  }
  let shown = 0;
  for (const r of rows) {
    const text = [r.path, r.answer, r.phylum, ...r.top.map(t => t[0])].join(" ").toLowerCase();
    const flags = flagsOf(r);
    const ok = (!q || text.includes(q)) && ((r.p1 ?? 0) >= min || min === 0) &&
      (!flag || (flag === "none" ? flags.length === 0 : flags.includes(flag)));
    r.tr.hidden = !ok;
    shown += ok;
  }
  document.getElementById("count").textContent = shown + " of " + rows.length + " images";
}
function fromAddress() {
  const args = new URLSearchParams(location.hash.slice(1));
  for (const id of ["q", "min", "flag"]) if (args.has(id))
    document.getElementById(id).value = args.get(id);
  if (args.has("sort")) { sortKey = args.get("sort"); desc = args.get("desc") === "1"; }
}
for (const th of document.querySelectorAll("th[data-key]")) th.onclick = () => {
  desc = sortKey === th.dataset.key ? !desc : false; sortKey = th.dataset.key; apply();
};
for (const id of ["q", "min", "flag"]) document.getElementById(id).oninput = apply;
draw(); fromAddress(); apply();
</script></body></html>
"""
