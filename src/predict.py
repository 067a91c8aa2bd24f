"""Name the class of new photos: ``python -m src.predict ckpt_path=best.ckpt inputs=photos/``.

``inputs`` is an image file, a folder (searched recursively) or a CSV with a ``path`` (or
``file_path``) column. Writes a CSV with the top-k classes of the checkpoint's target rank
(families by default) and their calibrated probabilities, the phylum of the top class, its
scientific and common name when the target is species and the training index had them
(``top1_name``), and the answer the evidence supports: one class, a higher rank when the
prediction set spans classes of one group ("cnidaria", rank phylum), or "unknown" when it
spans phyla or the image looks unlike the training data (``out_of_scope``). Unreadable
files are listed with the reason. Beside the CSV, ``predictions.html`` shows every input with
its thumbnail, answer, top 3 and flags, sortable and filterable (``html=false``: no page).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from src.data.images import DEFAULT_MAX_PIXELS, BadImageError, load_rgb
from src.data.schema import phylum_of, read_reference_index
from src.data.transforms import ImagePipeline
from src.errors import UserFacingError, check_whole_number
from src.evaluation.answers import answers
from src.evaluation.calibration import Calibration, check_alpha, check_keep, softmax
from src.evaluation.page import write_predictions_page
from src.models.classifier import SpeciesClassifier, load_classifier
from src.models.clip import ClipSpec
from src.models.zeroshot import expand_prompts, score
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


@dataclass(frozen=True)
class Answering:
    """How predict turns probabilities into answers: the checkpoint's calibration (None:
    top class only), the taxonomy answers climb, and the ``alpha``/``keep`` to use (None:
    the calibration's own)."""

    calibration: Calibration | None = None
    taxonomy: dict[str, list[str]] = field(default_factory=dict)
    target: str = "family"
    alpha: float | None = None
    keep: float | None = None
    animal_threshold: float = 0.5  # with p_animal: an animal when p(animal) > this


@torch.no_grad()
def image_logits(
    model: SpeciesClassifier,
    pipeline: ImagePipeline,
    paths: list[Path],
    batch_size: int = 32,
    num_workers: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Logits ``(N, classes)`` of ``paths`` and, per image, why it could not be read ("" if
    it could; its logits row is then meaningless)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    loader = DataLoader(
        PredictImages(paths, pipeline, max_pixels), batch_size=batch_size, num_workers=num_workers
    )
    logits, problems = [], []
    for images, batch_problems in tqdm(loader, desc="predicting", disable=len(paths) < 100):
        with torch.autocast("cuda", enabled=device == "cuda"):
            logits.append(model(images.to(device)).float().cpu())
        problems.extend(batch_problems)
    return torch.cat(logits).numpy(), problems


def predictions_table(
    paths: list[Path],
    logits: np.ndarray,
    problems: list[str],
    class_names: list[str],
    answering: Answering,
    top_k: int = 5,
    phylum: dict[str, str] | None = None,
    readable: dict[str, str] | None = None,
    p_animal: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per image: ``status``, the top-k classes and their (calibrated) probabilities,
    the phylum of the top class, its readable name (when ``readable`` is given) and the
    answer (see :mod:`src.evaluation.answers`): ``answer``, ``answer_rank``, ``set``,
    ``set_size``, ``scope_score``, ``p_animal`` (CLIP's, when given) and ``out_of_scope``
    (the scope score below its cut, or p(animal) at most ``answering.animal_threshold``;
    empty when neither was checked), and ``uncertain`` (the answer is not one class).
    Without a calibration the answer is the top class and ``set`` is empty."""
    calibration = answering.calibration
    probabilities = softmax(logits) if calibration is None else calibration.probabilities(logits)
    k = min(top_k, len(class_names))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    checked = calibration is not None or p_animal is not None
    flags = np.zeros(len(logits), bool)
    if calibration is None:
        sets = np.zeros_like(probabilities, bool)
        sets[np.arange(len(sets)), order[:, 0]] = True
    else:
        sets = calibration.prediction_sets(probabilities, answering.alpha)
        scope = calibration.scope(logits)
        flags |= scope < calibration.scope_threshold(answering.keep)
    if p_animal is not None:
        flags |= ~(np.asarray(p_animal) > answering.animal_threshold)
    answered = answers(
        probabilities, sets, class_names, answering.taxonomy, answering.target, flags
    )
    rows: list[dict[str, Any]] = []
    for i, (path, problem) in enumerate(zip(paths, problems)):
        row: dict[str, Any] = {"path": str(path), "status": problem or "ok"}
        if not problem:
            for rank, c in enumerate(order[i], 1):
                row[f"top{rank}"], row[f"p{rank}"] = class_names[c], round(probabilities[i, c], 4)
            row["top1_phylum"] = (phylum or {}).get(row["top1"], "")
            if readable:
                row["top1_name"] = readable.get(row["top1"], "")
            row.update(answered.iloc[i].to_dict())
            if calibration is None:
                row.update({"set": "", "set_size": None})
            else:
                row["scope_score"] = round(float(scope[i]), 4)
            if p_animal is not None:
                row["p_animal"] = round(float(p_animal[i]), 4)
            row["out_of_scope"] = bool(flags[i]) if checked else None
            row["uncertain"] = row["answer_rank"] != answering.target
        rows.append(row)
    table = pd.DataFrame(rows)
    if "set_size" in table:  # whole numbers, empty for unreadable files
        table["set_size"] = table["set_size"].astype("Int64")
    return table


def predict(
    model: SpeciesClassifier,
    pipeline: ImagePipeline,
    paths: list[Path],
    top_k: int = 5,
    phylum: dict[str, str] | None = None,
    readable: dict[str, str] | None = None,
    answering: Answering | None = None,
    animal_filter: Mapping[str, Any] | None = None,
    **reading: Any,
) -> pd.DataFrame:
    """The table of :func:`predictions_table` for ``paths``; ``reading`` goes to
    :func:`image_logits` (``batch_size``, ``num_workers``, ``max_pixels``, ``device``), and
    ``answering`` defaults to the model's own calibration and taxonomy. ``animal_filter``
    (``conf/animal_filter/clip.yaml``) also asks a CLIP model whether each image shows an
    animal."""
    logits, problems = image_logits(model, pipeline, paths, **reading)
    if answering is None:
        state = getattr(model, "datamodule_state", None) or {}
        answering = Answering(
            model.calibration,
            class_taxonomy_of(model, phylum or {}),
            state.get("target", "family"),
        )
    p_animal = None
    if animal_filter:
        answering = replace(answering, animal_threshold=float(animal_filter["threshold"]))
        phyla = sorted(set((phylum or {}).values())) or list(model.class_names)
        p_animal = animal_probabilities(paths, problems, animal_filter, phyla, **reading)
    return predictions_table(
        paths, logits, problems, model.class_names, answering, top_k, phylum, readable, p_animal
    )


def animal_probabilities(
    paths: list[Path],
    problems: list[str],
    options: Mapping[str, Any],
    phyla: list[str],
    **reading: Any,
) -> np.ndarray:
    """CLIP's p(animal) of each readable image (NaN for the others), as src.filter scores."""
    animal = expand_prompts(options["prompts"]["animal"], phyla)
    spec = ClipSpec(
        options["model"],
        options["pretrained"],
        options["weights"],
        options["model_config_dir"],
        weights_key="animal_filter.weights",
    )
    readable = [i for i, problem in enumerate(problems) if not problem]
    probabilities, _ = score(
        spec,
        Path("/"),  # the paths are absolute
        [str(Path(paths[i]).resolve()) for i in readable],
        animal + list(options["prompts"]["non_animal"]),
        reading.get("batch_size", 32),
        reading.get("num_workers", 2),
        reading.get("max_pixels", DEFAULT_MAX_PIXELS),
        reading.get("device"),
        progress=len(readable) >= 100,
    )
    p_animal = np.full(len(paths), np.nan)
    p_animal[readable] = probabilities[:, : len(animal)].sum(1)
    return p_animal


def class_taxonomy_of(model: SpeciesClassifier, phylum: dict[str, str]) -> dict[str, list[str]]:
    """The ranks above the target answers may climb to: saved with the model (older
    checkpoints: the phylum alone, when the classes span several)."""
    taxonomy = model.hparams.get("taxonomy")
    if taxonomy:
        return dict(taxonomy)
    groups = [phylum.get(name, "") for name in model.class_names]
    return {"phylum": groups} if len(set(groups)) > 1 and all(groups) else {}


def class_phylum(model: SpeciesClassifier, state: dict[str, Any]) -> dict[str, str]:
    """Each class -> its phylum: saved in the checkpoint (older ones: from the shipped index)."""
    target = state.get("target", "family")
    if target == "phylum":
        return {name: name for name in model.class_names}
    if "phylum" in state:
        return state["phylum"]
    return phylum_of(read_reference_index(), target)


def run_predict(cfg: DictConfig) -> pd.DataFrame:
    for key, least in (("top_k", 1), ("batch_size", 1), ("num_workers", 0), ("show", 0)):
        check_whole_number(key, cfg[key], least)
    model = load_classifier(cfg.ckpt_path)
    state = model.datamodule_state
    phylum = class_phylum(model, state)
    paths = collect_inputs(cfg.inputs)
    if not paths:
        raise UserFacingError(f"No images found in {cfg.inputs}.")
    if model.calibration is None:
        log.warning(
            "%s has no calibration (trained with calibration=none or before it existed): "
            "the answer is the top class, with no prediction set and no out-of-scope check. "
            "Calibrate it on its val split: python -m src.evaluate ckpt_path=%s calibrate=true",
            cfg.ckpt_path,
            cfg.ckpt_path,
        )
    answering = Answering(
        model.calibration,
        class_taxonomy_of(model, phylum),
        state.get("target", "family"),
        None if cfg.alpha is None else check_alpha(cfg.alpha),
        None if cfg.keep is None else check_keep(cfg.keep),
    )
    table = predict(
        model,
        image_pipeline(model, state),
        paths,
        cfg.top_k,
        phylum,
        state.get("names"),
        answering,
        animal_filter=cfg.get("animal_filter") or None,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        max_pixels=cfg.max_image_pixels,
        device=cfg.device,
    )
    output = Path(cfg.output or Path(cfg.paths.output_dir) / "predictions.csv")
    write_csv(table, output)
    columns = ("path", "status", "answer", "answer_rank", "set_size", "out_of_scope", "p_animal")
    columns += ("top1", "p1")
    shown = [c for c in columns if c in table]
    if cfg.show:
        print(table[shown].head(cfg.show).astype(object).fillna("").to_string(index=False))
    if len(table) > cfg.show:
        print(f"(the first {cfg.show} of {len(table)} rows are shown; show=N shows more)")
    failed = int((table["status"] != "ok").sum())
    written = str(output)
    if cfg.html:
        page = write_predictions_page(
            table,
            output.with_suffix(".html"),
            cfg.max_image_pixels,
            f"Predictions of {cfg.ckpt_path}",
        )
        written += f" and {page}"
    print(f"\n{len(table)} images, {failed} unreadable; wrote {written}")
    return table


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    run_cli(run_predict, cfg)


if __name__ == "__main__":
    main()
