"""Real scans in the project's on-disk format: scikit-learn's 1,797 handwritten digits.

The only real images available offline (they ship with scikit-learn), so a benchmark can
check what synthetic images cannot: that a method still learns real pixels. Each digit is
a "family" (10 classes, about 180 images each), written as an 8x8 greyscale PNG scaled to
32x32 RGB; phylum "even"/"odd" gives the index a rank above the target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from src.benchmarks.measure import cache_dir
from src.data.schema import METADATA_FILE
from src.runs.files import write_csv

SCALE = 4  # 8 px -> 32 px


def write_digits(root: Path) -> Path:
    """Write the digits under ``root`` (images/<digit>/<n>.png and metadata.csv)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = []
    for n, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        grey = np.clip(pixels * 255.0 / 16.0, 0, 255).astype(np.uint8)
        image = Image.fromarray(grey).resize((8 * SCALE, 8 * SCALE), Image.NEAREST)
        path = Path("images") / f"digit_{label}" / f"{n:04d}.png"
        (root / path.parent).mkdir(parents=True, exist_ok=True)
        image.convert("RGB").save(root / path)
        rows.append(
            {
                "rare_species_id": f"digit-{n}",
                "eol_content_id": n,
                "eol_page_id": int(label),
                "kingdom": "digits",
                "phylum": "even" if label % 2 == 0 else "odd",
                "family": f"digit_{label}",
                "file_path": path.as_posix(),
            }
        )
    write_csv(pd.DataFrame(rows), root / METADATA_FILE)  # last: its presence means complete
    return root


def ensure_digits(root: Path | None = None) -> Path:
    """The digits data set in the project's cache folder (or ``root``), written once."""
    root = Path(root or cache_dir() / "digits")
    return root if (root / METADATA_FILE).is_file() else write_digits(root)
