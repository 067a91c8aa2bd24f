"""CLIP zero-shot "only animals" filter: score every image, decide, review, reuse.

p(animal) is the softmax mass of the animal prompts among all prompts (animal and
non-animal ones), so each side can be a prompt ensemble; an image is kept when
p(animal) > threshold (0.5, as the original).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from src.data.images import DEFAULT_MAX_PIXELS, BadImageError, load_rgb
from src.models.clip import ClipSpec, load_clip
from src.runs.files import write_csv, write_with

log = logging.getLogger(__name__)
SCORES_FILE = "clip_scores.csv"
CACHE_DIR = ".clip_cache"


def expand_prompts(prompts: Sequence[str], phyla: Sequence[str]) -> list[str]:
    """Templates with ``{phylum}`` become one prompt per phylum of the data set."""
    expanded: list[str] = []
    for prompt in prompts:
        expanded += [prompt.format(phylum=p) for p in phyla] if "{phylum}" in prompt else [prompt]
    return list(dict.fromkeys(expanded))


class ClipImages(Dataset):
    """Images preprocessed by open_clip's own ``preprocess``, with the reason an image could
    not be read ("" when it could): what the filter scores and the baselines embed."""

    def __init__(self, root: Path, file_paths: Sequence[str], preprocess, max_pixels: int):
        self.root, self.file_paths = root, list(file_paths)
        self.preprocess, self.max_pixels = preprocess, max_pixels

    def __len__(self) -> int:
        return len(self.file_paths)

    def __getitem__(self, index: int):
        try:
            array = load_rgb(self.root / self.file_paths[index], self.max_pixels, draft_size=448)
            return self.preprocess(Image.fromarray(array)), ""
        except BadImageError as err:  # scored as unreadable, listed, never silently dropped
            size = getattr(self.preprocess.transforms[0], "size", 224)
            side = size if isinstance(size, int) else size[0]
            return torch.zeros(3, side, side), err.reason


def autocast_dtype(device: str) -> torch.dtype | None:
    """bf16 (or fp16) autocast on CUDA, none (fp32) on the CPU."""
    if not device.startswith("cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@torch.no_grad()
def encode_images(
    model,
    preprocess,
    root: Path,
    file_paths: Sequence[str],
    batch_size: int = 64,
    num_workers: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str = "cpu",
    desc: str = "CLIP embeddings",
    progress: bool | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """``(N, D)`` float32 image embeddings (``model.encode_image``, on the CPU, in the order
    of the files) and, per file, why it could not be read ("" when it was: its row is zeros).
    """
    loader = DataLoader(
        ClipImages(Path(root), file_paths, preprocess, max_pixels),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.startswith("cuda"),
    )
    dtype = autocast_dtype(device)
    parts, reasons = [], []
    for images, why in tqdm(
        loader, desc=desc, disable=None if progress is None else not progress, leave=False
    ):
        with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
            parts.append(model.encode_image(images.to(device)).float().cpu())
        reasons += list(why)
    return (torch.cat(parts) if parts else torch.zeros(0, 0)), reasons


@torch.no_grad()
def score(
    spec: ClipSpec,
    root: Path,
    file_paths: Sequence[str],
    prompts: Sequence[str],
    batch_size: int = 64,
    num_workers: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Softmax over ``prompts`` for every image, ``(N, len(prompts))``, and unreadable reasons."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, preprocess, tokenizer = load_clip(spec, device)
    text = model.encode_text(tokenizer(list(prompts)).to(device)).float().cpu()
    text = text / text.norm(dim=-1, keepdim=True)
    scale = float(model.logit_scale.exp()) if hasattr(model, "logit_scale") else 100.0
    features, problems = encode_images(
        model,
        preprocess,
        root,
        file_paths,
        batch_size,
        num_workers,
        max_pixels,
        device,
        desc="CLIP scores",
        progress=progress,
    )
    if not len(features):
        return np.zeros((0, len(prompts))), problems
    features = features / features.norm(dim=-1, keepdim=True)
    return (scale * features @ text.T).softmax(dim=-1).numpy(), problems


def scores_frame(
    index: pd.DataFrame,
    probabilities: np.ndarray,
    problems: Sequence[str],
    animal: Sequence[str],
    other: Sequence[str],
) -> pd.DataFrame:
    """One row per image: p(animal), the most likely prompt of each side, unreadable reason."""
    n_animal = len(animal)
    other_probabilities = probabilities[:, n_animal:]
    best_other = other_probabilities.argmax(1) if len(other) else np.zeros(len(index), int)
    frame = pd.DataFrame(
        {
            "rare_species_id": index["rare_species_id"].to_numpy(),
            "file_path": index["file_path"].to_numpy(),
            "p_animal": probabilities[:, :n_animal].sum(1),
            "best_animal_prompt": [animal[i] for i in probabilities[:, :n_animal].argmax(1)],
            "best_non_animal_prompt": [other[i] for i in best_other],
            "p_best_non_animal": other_probabilities.max(1) if len(other) else 0.0,
            "unreadable": list(problems),
        }
    )
    frame.loc[frame["unreadable"] != "", "p_animal"] = np.nan
    return frame


def decide(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """``keep`` = p(animal) > threshold; unreadable images are not kept."""
    frame = frame.copy()
    frame["keep"] = (frame["p_animal"] > threshold) & (frame["unreadable"] == "")
    frame["decision"] = np.where(
        frame["keep"], "animal", np.where(frame["unreadable"] != "", "unreadable", "not animal")
    )
    return frame


def cache_key(
    spec: ClipSpec, animal: Sequence[str], other: Sequence[str], file_paths: Sequence[str]
) -> str:
    payload = json.dumps(
        {
            "clip": spec.identity(),
            "animal": list(animal),
            "other": list(other),
            "files": list(file_paths),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cached_scores(out_dir: Path, key: str) -> pd.DataFrame | None:
    path = out_dir / CACHE_DIR / f"{key}.csv"
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
        frame["unreadable"] = frame["unreadable"].fillna("").astype(str)  # CSV turns "" into NaN
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, KeyError):
        log.warning("Ignoring the CLIP score cache %s: it cannot be read; scoring again.", path)
        return None
    return frame


def store_scores(out_dir: Path, key: str, frame: pd.DataFrame) -> None:
    write_csv(frame, out_dir / CACHE_DIR / f"{key}.csv")


def contact_sheet(
    root: Path,
    rows: pd.DataFrame,
    title: str,
    path: Path,
    limit: int = 48,
    columns: int = 8,
    side: int = 128,
) -> Path:
    """A grid of thumbnails with p(animal) and the best non-animal prompt, for review."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = rows.head(limit)
    n_rows = max(1, -(-len(shown) // columns))
    fig, axes = plt.subplots(n_rows, columns, figsize=(columns * 2.2, n_rows * 2.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, shown.itertuples()):
        try:
            image = Image.fromarray(load_rgb(root / row.file_path, draft_size=side))
            image.thumbnail((side, side))
            ax.imshow(image)
        except BadImageError as err:
            ax.text(0.5, 0.5, err.reason, ha="center")
        ax.set_title(f"p={row.p_animal:.2f}\n{row.best_non_animal_prompt}", fontsize=7)
    fig.suptitle(
        f"{title} ({len(rows)} images{', first ' + str(limit) if len(rows) > limit else ''})"
    )
    fig.tight_layout()
    try:
        write_with(path, lambda temporary: fig.savefig(temporary, dpi=90))
    finally:
        plt.close(fig)
    return path
