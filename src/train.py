"""Train a classifier: ``python -m src.train [group=option ...] [key=value ...]``.

Composes ``conf/train.yaml``, seeds everything, builds datamodule, model, callbacks,
loggers and trainer from their ``_target_`` configs, fits, tests the best checkpoint
and returns the monitored metric (what sweeps optimise).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
import optuna
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from src.callbacks import write_json
from src.checkpoints import CheckpointError, read_checkpoint
from src.data.features import with_feature_cache
from src.errors import StoppedBySignal
from src.sweeps.pruning import OptunaPruning, load_trial
from src.sweeps.summary import FIT_SUMMARY_FILE
from src.utils import RUN_INFO_FILE, register_resolvers, run_cli, run_info

log = logging.getLogger(__name__)
register_resolvers()


def instantiate_all(group: DictConfig | None) -> list:
    """Every ``_target_`` entry of a config group (callbacks, loggers), skipping nulls."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def build(
    cfg: DictConfig, extra_callbacks: list[pl.Callback] | None = None
) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
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
    loggers = instantiate_all(cfg.get("logger"))
    callbacks = instantiate_all(cfg.get("callbacks")) + list(extra_callbacks or [])
    if not loggers:  # Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


def optuna_pruning(cfg: DictConfig) -> OptunaPruning | None:
    """The pruning callback when this run is a trial launched by the hyperband sweeper."""
    search = cfg.get("hparams_search")
    if not search or search.get("trial_number") is None:
        return None
    trial = load_trial(search.storage, search.study_name, int(search.trial_number))
    return OptunaPruning(trial, cfg.monitor)


def resume_path(cfg: DictConfig) -> str | None:
    """The checkpoint to resume from, checked before any data is prepared (one sentence if bad).

    ``last`` is ``last.ckpt`` in the run's checkpoint folder and must exist (left to
    Lightning, a missing one silently starts afresh). ``auto`` takes the newest of
    ``last.ckpt`` and Lightning's SLURM ``hpc_ckpt_*.ckpt`` if there is one, else starts
    afresh; a SLURM job that was requeued (``SLURM_RESTART_COUNT`` > 0) does the same
    when no ``ckpt_path`` is given, so a preempted or timed-out job continues where it was.
    """
    ckpt_path = cfg.get("ckpt_path")
    requeued = int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
    if ckpt_path == "auto" or (ckpt_path is None and requeued):
        found = [p for p in (last_checkpoint(cfg), *hpc_checkpoints(cfg)) if p.is_file()]
        if not found:
            return None
        path = max(found, key=lambda p: p.stat().st_mtime)
        log.info("Resuming from %s", path)
    elif ckpt_path in (None, "best", "hpc", "registry"):  # nothing to resume, or Lightning's own
        return ckpt_path
    elif ckpt_path == "last":
        path = last_checkpoint(cfg)
        if not path.is_file():
            raise CheckpointError(
                f"ckpt_path=last found no {path}: point hydra.run.dir at the run to resume, "
                "or use ckpt_path=auto to start afresh when there is nothing to resume."
            )
    else:
        path = Path(ckpt_path)
    read_checkpoint(path, mmap=True)
    return str(path)


def last_checkpoint(cfg: DictConfig) -> Path:
    folder = OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath", default=None)
    return Path(folder or Path(cfg.paths.output_dir) / "checkpoints") / "last.ckpt"


def hpc_checkpoints(cfg: DictConfig) -> list[Path]:
    """What Lightning's SLURM requeue (SIGUSR1) saves into the trainer's root folder."""
    return sorted(Path(cfg.trainer.get("default_root_dir") or ".").glob("hpc_ckpt_*.ckpt"))


def fit(cfg: DictConfig, trainer: pl.Trainer, model, datamodule, ckpt_path: str | None) -> None:
    """``trainer.fit``; on SIGTERM the state is saved (``StopOnSigterm``); say how to resume."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException as err:
        raise StoppedBySignal(
            f"Stopped by SIGTERM in epoch {trainer.current_epoch} after {trainer.global_step} "
            f"steps; the run's state is in {cfg.paths.output_dir}/checkpoints/last.ckpt. "
            f"Resume with: {resume_command(cfg)}"
        ) from err


def resume_command(cfg: DictConfig) -> str:
    """This run's command line, pointed at its own folder, with ``ckpt_path=last``."""
    from hydra.core.hydra_config import HydraConfig

    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    kept = [o for o in overrides if not o.startswith(("ckpt_path=", "hydra.run.dir="))]
    return " ".join(
        ["python -m src.train", *kept, f"hydra.run.dir={cfg.paths.output_dir}", "ckpt_path=last"]
    )


def train(cfg: DictConfig) -> float | None:
    ckpt_path = resume_path(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    if rank_zero_only.rank == 0:
        write_json(Path(cfg.paths.output_dir) / RUN_INFO_FILE, run_info())
    pruning = optuna_pruning(cfg)
    datamodule, model, trainer = build(cfg, [pruning] if pruning else [])
    if cfg.get("train", {}).get("feature_cache"):
        datamodule = with_feature_cache(model, datamodule)
    fit(cfg, trainer, model, datamodule, ckpt_path)
    checkpoint = trainer.checkpoint_callback
    score = (
        None
        if checkpoint is None or checkpoint.best_model_score is None
        else float(checkpoint.best_model_score)
    )
    best = checkpoint.best_model_path if checkpoint else ""
    write_fit_summary(cfg, trainer, score, best)
    if pruning is not None and pruning.pruned:
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
    if cfg.get("test", True):
        run_tests(trainer, model, datamodule, best or None)
    log.info("Best %s: %s (%s)", cfg.monitor, score, best)
    return score


def run_tests(trainer: pl.Trainer, model, datamodule, ckpt_path: str | None) -> None:
    """Test; when val/test were filtered, test the unfiltered test set too (both reported)."""
    for variant in datamodule.test_variants():
        datamodule.test_variant = variant
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path)
    datamodule.test_variant = "test"


@rank_zero_only
def write_fit_summary(cfg: DictConfig, trainer: pl.Trainer, score: float | None, best: str):
    payload = {
        "monitor": cfg.monitor,
        "best_score": score,
        "best_checkpoint": best,
        "epochs_run": trainer.current_epoch,
    }
    write_json(Path(cfg.paths.output_dir) / FIT_SUMMARY_FILE, payload)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_cli(train, cfg)


if __name__ == "__main__":
    main()
