"""Re-test a checkpoint: ``python -m src.evaluate ckpt_path=PATH [data=...]``.

Writes the same ``test_metrics.json`` and reports as a training run, in its own run
folder, on the training run's split, with the checkpoint's calibration. ``calibrate=true``
fits the calibration again on that split's val images and stores it in the checkpoint
(how checkpoints from before calibration, or trained with ``calibration=none``, get one).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.errors import UserFacingError
from src.evaluation.testing import calibrate, run_tests
from src.models.classifier import load_classifier
from src.runs.cli import register_resolvers, run_cli

log = logging.getLogger(__name__)
register_resolvers()


def training_split_dir(cfg: DictConfig, run_config: dict) -> str:
    """The split the checkpoint was trained on: next to its run folder, or as configured."""
    if cfg.get("split_dir"):
        return str(cfg.split_dir)
    source = Path(cfg.ckpt_path).resolve()
    # a model folder (python -m src.export format=hf) carries its split
    beside = source / "split" if source.is_dir() else source.parent.parent / "split"
    if beside.is_dir():
        return str(beside)
    recorded = run_config.get("data", {}).get("split_dir") or str(
        Path(run_config["paths"]["output_dir"]) / "split"
    )
    if not Path(recorded).is_dir():
        raise UserFacingError(
            f"The split of the run that made {cfg.ckpt_path} is not at {beside} or {recorded}; "
            "pass split_dir=DIR (a folder with train/val/test.csv)."
        )
    return recorded


def evaluate(cfg: DictConfig) -> dict[str, float]:
    pl.seed_everything(cfg.seed, workers=True)
    model = load_classifier(cfg.ckpt_path)
    run_config = model.run_config or {}
    if cfg.get("data") is None and "data" not in run_config:
        raise UserFacingError(f"{cfg.ckpt_path} carries no data config: pass data=... too.")
    data = cfg.data if cfg.get("data") is not None else OmegaConf.create(run_config["data"])
    data = OmegaConf.merge(
        data, {"output_dir": cfg.paths.output_dir, "split_dir": training_split_dir(cfg, run_config)}
    )
    datamodule = instantiate(data)
    datamodule.prepare_data()
    datamodule.setup("test")
    if datamodule.class_names != model.class_names:
        raise UserFacingError(
            f"{cfg.ckpt_path} was trained on other classes than {datamodule.root} has; "
            "point data.root at the data it was trained on."
        )
    model.check_image_size(datamodule.image_size)
    datamodule.use_data_config(model.data_config)
    trainer = instantiate(cfg.trainer, logger=False)
    if cfg.calibrate or model.calibration is None:
        recalibrate(cfg, trainer, model, datamodule)
    return run_tests(trainer, model, datamodule, cfg.paths.output_dir)


def recalibrate(cfg: DictConfig, trainer, model, datamodule) -> None:
    """Fit the calibration on the run's val split: into the checkpoint with calibrate=true,
    otherwise (a checkpoint without one) for this report only."""
    if not cfg.get("calibration"):
        if cfg.calibrate:
            raise UserFacingError(
                "calibrate=true needs a calibration config; drop calibration=none."
            )
        return
    if cfg.calibrate and Path(cfg.ckpt_path).is_dir():
        raise UserFacingError(
            f"calibrate=true stores the calibration in a .ckpt file, and {cfg.ckpt_path} is a "
            "model folder: calibrate the checkpoint it was exported from, then export it again."
        )
    if not cfg.calibrate:
        log.warning(
            "%s has no calibration: fitted one on the val split for this report only "
            "(calibrate=true stores it in the checkpoint).",
            cfg.ckpt_path,
        )
    saved = cfg.ckpt_path if cfg.calibrate else None
    calibrate(trainer, model, datamodule, instantiate(cfg.calibration), saved)
    if saved:
        log.info("Stored the calibration in %s", saved)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict[str, float]:
    return run_cli(evaluate, cfg)


if __name__ == "__main__":
    main()
