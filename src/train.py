"""Train a classifier: ``python -m src.train [group=option ...] [key=value ...]``.

Composes ``conf/train.yaml``, seeds everything, builds datamodule, model, callbacks,
loggers and trainer from their ``_target_`` configs, fits, tests the best checkpoint
and returns the monitored metric (what sweeps optimise).
"""

from __future__ import annotations

import logging

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.utils import register_resolvers, run_cli

log = logging.getLogger(__name__)
register_resolvers()


def instantiate_all(group: DictConfig | None) -> list:
    """Every ``_target_`` entry of a config group (callbacks, loggers), skipping nulls."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    datamodule = instantiate(cfg.data)
    class_weights = datamodule.class_weights
    model = instantiate(
        cfg.model,
        class_names=datamodule.class_names,
        class_weights=None if class_weights is None else class_weights.tolist(),
        _recursive_=False,
    )
    datamodule.use_data_config(model.data_config)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    trainer = instantiate(
        cfg.trainer,
        callbacks=instantiate_all(cfg.get("callbacks")),
        logger=instantiate_all(cfg.get("logger")) or False,
    )
    return datamodule, model, trainer


def train(cfg: DictConfig) -> float | None:
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test", True):
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
    score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    score = None if score is None else float(score)
    log.info("Best %s: %s (%s)", cfg.monitor, score, best)
    return score


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_cli(train, cfg)


if __name__ == "__main__":
    main()
