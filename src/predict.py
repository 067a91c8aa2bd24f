"""Name the class of new photos: ``python -m src.predict ckpt_path=best.ckpt inputs=photos/``.

``inputs`` is an image file, a folder (searched recursively) or a CSV with a ``path`` (or
``file_path``) column. Writes a CSV with the top-k classes of the checkpoint's target rank
(families by default) and probabilities, the phylum of the top class, its scientific and
common name when the target is species and the training index had them (``top1_name``),
and an "uncertain" flag; unreadable files are listed with the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from src.data.images import DEFAULT_MAX_PIXELS, BadImageError, load_rgb
from src.data.schema import phylum_of, read_reference_index
from src.data.transforms import ImagePipeline
from src.errors import UserFacingError
from src.models.classifier import SpeciesClassifier, load_classifier
from src.runs.cli import register_resolvers, run_cli
from src.runs.files import write_csv

log = logging.getLogger(__name__)
register_resolvers()
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def collect_inputs(inputs: str | Path) -> list[Path]:
    """Files of a folder (recursively), the rows of a CSV, or the one file given."""
    path = Path(inputs).expanduser()
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    if path.suffix.lower() == ".csv" and path.is_file():
        frame = pd.read_csv(path)
        column = next((c for c in ("path", "file_path") if c in frame.columns), None)
        if column is None:
            raise UserFacingError(f"{path} needs a 'path' or 'file_path' column.")
        return [Path(p) if Path(p).is_absolute() else path.parent / p for p in frame[column]]
    if path.is_file():
        return [path]
    raise UserFacingError(f"inputs={inputs} is not an image, a folder or a CSV of paths.")


class PredictImages(Dataset):
    def __init__(self, paths: list[Path], pipeline: ImagePipeline, max_pixels: int) -> None:
        self.paths, self.pipeline, self.max_pixels = paths, pipeline, max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        try:
            array = load_rgb(self.paths[index], self.max_pixels, self.pipeline.image_size)
            return self.pipeline(array), ""
        except BadImageError as err:  # reported in the output, not fatal
            size = self.pipeline.image_size
            return torch.zeros(3, size, size), err.reason


def image_pipeline(model: SpeciesClassifier, checkpoint_data: dict[str, Any]) -> ImagePipeline:
    """The pixels the model was trained on: size, variant and normalisation from the checkpoint."""
    return ImagePipeline(
        image_size=int(checkpoint_data.get("image_size", 224)),
        variant=checkpoint_data.get("preprocess", "original"),
        **model.data_config,
    )


@torch.no_grad()
def predict(
    model: SpeciesClassifier,
    pipeline: ImagePipeline,
    paths: list[Path],
    top_k: int = 5,
    batch_size: int = 32,
    num_workers: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str | None = None,
    phylum: dict[str, str] | None = None,
    uncertain_below: float = 0.5,
    readable: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The top-k classes of each image; ``phylum`` and ``readable`` map a class to its
    phylum and its readable name (``top1_name``, only when ``readable`` is given)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    loader = DataLoader(
        PredictImages(paths, pipeline, max_pixels), batch_size=batch_size, num_workers=num_workers
    )
    names = model.class_names
    k = min(top_k, len(names))
    rows: list[dict[str, Any]] = []
    for images, problems in tqdm(loader, desc="predicting", disable=len(paths) < 100):
        with torch.autocast("cuda", enabled=device == "cuda"):
            probabilities = model(images.to(device)).float().softmax(1).cpu()
        values, indices = probabilities.topk(k, dim=1)
        for row_values, row_indices, problem in zip(values, indices, problems):
            path = paths[len(rows)]
            row: dict[str, Any] = {"path": str(path), "status": problem or "ok"}
            if not problem:
                for rank, (p, i) in enumerate(zip(row_values.tolist(), row_indices.tolist()), 1):
                    row[f"top{rank}"], row[f"p{rank}"] = names[i], round(p, 4)
                row["phylum"] = (phylum or {}).get(row["top1"], "")
                if readable:
                    row["top1_name"] = readable.get(row["top1"], "")
                row["uncertain"] = row["p1"] < uncertain_below
            rows.append(row)
    return pd.DataFrame(rows)


def class_phylum(model: SpeciesClassifier, state: dict[str, Any]) -> dict[str, str]:
    """Each class -> its phylum: saved in the checkpoint (older ones: from the shipped index)."""
    target = state.get("target", "family")
    if target == "phylum":
        return {name: name for name in model.class_names}
    if "phylum" in state:
        return state["phylum"]
    return phylum_of(read_reference_index(), target)


def run_predict(cfg: DictConfig) -> pd.DataFrame:
    model = load_classifier(cfg.ckpt_path)
    state = model.datamodule_state
    phylum = class_phylum(model, state)
    paths = collect_inputs(cfg.inputs)
    if not paths:
        raise UserFacingError(f"No images found in {cfg.inputs}.")
    table = predict(
        model,
        image_pipeline(model, state),
        paths,
        cfg.top_k,
        cfg.batch_size,
        cfg.num_workers,
        cfg.max_image_pixels,
        cfg.device,
        phylum,
        cfg.uncertain_below,
        state.get("names"),
    )
    output = Path(cfg.output or Path(cfg.paths.output_dir) / "predictions.csv")
    write_csv(table, output)
    columns = ("path", "status", "top1", "top1_name", "p1", "phylum", "uncertain")
    shown = [c for c in columns if c in table]
    print(table[shown].head(cfg.show).fillna("").to_string(index=False))
    failed = int((table["status"] != "ok").sum())
    print(f"\n{len(table)} images, {failed} unreadable; wrote {output}")
    return table


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    run_cli(run_predict, cfg)


if __name__ == "__main__":
    main()
