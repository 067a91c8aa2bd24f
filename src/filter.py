"""The "only animals" filter: ``python -m src.filter data=rarespecies [filter.*=...]``.

Writes ``clip_scores.csv`` (one row per image), ``metadata_onlyanimals.csv`` (the kept rows,
in the normal format, for ``data=onlyanimals``) and contact sheets of the removed and the
borderline images, so a person can review the decision before training.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.data.schema import COLUMNS, FILTERED_INDEX
from src.models.clip import ClipSpec
from src.models.zeroshot import (
    SCORES_FILE,
    cache_key,
    cached_scores,
    contact_sheet,
    decide,
    expand_prompts,
    score,
    scores_frame,
    store_scores,
)
from src.runs.cli import register_resolvers, run_cli
from src.runs.files import write_csv

log = logging.getLogger(__name__)
register_resolvers()


def clip_scores(cfg: DictConfig, root: Path, index: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """Scores from the cache when model, prompts and files are unchanged, else from CLIP."""
    options = cfg.filter
    animal = expand_prompts(options.prompts.animal, sorted(index["phylum"].unique()))
    other = list(options.prompts.non_animal)
    spec = ClipSpec(options.model, options.pretrained, options.weights, options.model_config_dir)
    key = cache_key(spec, animal, other, index["file_path"].tolist())
    frame = cached_scores(out_dir, key)
    if frame is not None:
        log.info("Reusing the CLIP scores of %s (same model, prompts and files).", key)
        return frame
    probabilities, problems = score(
        spec,
        root,
        index["file_path"].tolist(),
        animal + other,
        batch_size=options.batch_size,
        num_workers=options.num_workers,
        max_pixels=cfg.data.max_image_pixels,
        device=options.device,
    )
    frame = scores_frame(index, probabilities, problems, animal, other)
    store_scores(out_dir, key, frame)
    return frame


def run_filter(cfg: DictConfig) -> pd.DataFrame:
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    index, root = datamodule.load_index(), datamodule.root
    out_dir = Path(cfg.filter.out_dir or root)
    out_dir.mkdir(parents=True, exist_ok=True)
    decided = decide(clip_scores(cfg, root, index, out_dir), cfg.filter.threshold)
    write_csv(decided, out_dir / SCORES_FILE)
    kept = index[decided["keep"].to_numpy()]
    write_csv(kept[list(COLUMNS)], out_dir / FILTERED_INDEX)
    removed = decided[~decided["keep"]].sort_values("p_animal")
    margin = (decided["p_animal"] - cfg.filter.threshold).abs()
    # margin is assigned before filtering: assigning a Series to an empty frame adds rows
    with_margin = decided.assign(margin=margin)
    borderline = with_margin[with_margin["margin"] <= cfg.filter.borderline].sort_values("margin")
    contact_sheet(root, removed, "Removed as not animal", out_dir / "filter_removed.png")
    contact_sheet(
        root,
        borderline,
        f"Borderline (p within {cfg.filter.borderline} of {cfg.filter.threshold})",
        out_dir / "filter_borderline.png",
    )
    lost = sorted(set(index["family"]) - set(kept["family"]))
    log.info(
        "Kept %d of %d images (removed %d, unreadable %d); wrote %s and %s in %s.",
        len(kept),
        len(index),
        (decided["decision"] == "not animal").sum(),
        (decided["decision"] == "unreadable").sum(),
        SCORES_FILE,
        FILTERED_INDEX,
        out_dir,
    )
    if lost:
        log.warning("Families with no image left: %s", ", ".join(lost))
    return decided


@hydra.main(version_base="1.3", config_path="../conf", config_name="filter")
def main(cfg: DictConfig) -> None:
    run_cli(run_filter, cfg)


if __name__ == "__main__":
    main()
