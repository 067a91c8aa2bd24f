"""Train a classifier: ``python -m src.train [group=option ...] [key=value ...]``.

Composes ``conf/train.yaml``, seeds everything, builds datamodule, model, callbacks,
loggers and trainer from their ``_target_`` configs, fits, takes the best checkpoint,
calibrates it on val (temperature, prediction sets, out-of-scope cut), tests it
and returns the monitored metric (what sweeps optimise).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import optuna
import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.utilities import rank_zero_only

from src.data.features import with_feature_cache
from src.errors import UserFacingError
from src.evaluation.calibration import Calibrator
from src.evaluation.testing import calibrate, run_tests
from src.models.metrics import TABLE_KEYS
from src.runs.cli import register_resolvers, run_cli
from src.runs.files import write_json
from src.runs.loggers import finish_runs, log_run_summary, run_overrides
from src.runs.provenance import RUN_INFO_FILE, run_info
from src.runs.resume import fit, resume_path
from src.sweeps.pruning import OptunaPruning, load_trial
from src.sweeps.study import hopeless_after
from src.sweeps.summary import FIT_SUMMARY_FILE

log = logging.getLogger(__name__)
register_resolvers()


def instantiate_all(group: DictConfig | None) -> list:
    """Every ``_target_`` entry of a config group (callbacks, loggers), skipping nulls; one
    sentence when an entry needs a package that is not installed (mlflow, wandb)."""
    if not group:
        return []
    built = []
    for entry in group.values():
        if not entry or "_target_" not in entry:
            continue
        try:
            built.append(instantiate(entry))
        except InstantiationException as err:
            if not isinstance(err.__cause__, ModuleNotFoundError):
                raise
            raise UserFacingError(
                f"{entry._target_} needs a package that is not installed "
                f"({str(err.__cause__).strip()}): pip install -e '.[trackers]' installs the "
                "experiment trackers (mlflow, wandb)."
            ) from err
    return built


def build(
    cfg: DictConfig, extra_callbacks: list[pl.Callback] | None = None
) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")  # the classes and their weights come from the rows
    class_weights = datamodule.class_weights
    model = instantiate(
        cfg.model,
        class_names=datamodule.class_names,
        class_weights=None if class_weights is None else class_weights.tolist(),
        taxonomy=datamodule.taxonomy,
        _recursive_=False,
    )
    model.check_image_size(datamodule.image_size)
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
    after = hopeless_after(search.get("pruner") or {})
    return OptunaPruning(trial, cfg.monitor, cfg.get("monitor_mode", "max"), after)


def train(cfg: DictConfig) -> float | None:
    ckpt_path = resume_path(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    if rank_zero_only.rank == 0:
        write_json(Path(cfg.paths.output_dir) / RUN_INFO_FILE, run_info())
    pruning = optuna_pruning(cfg)
    # built before fitting, so that a bad calibration setting stops the run at once
    calibrator = instantiate(cfg.calibration) if cfg.get("calibration") else None
    datamodule, model, trainer = build(cfg, [pruning] if pruning else [])
    try:
        return fit_calibrate_test(cfg, trainer, model, datamodule, ckpt_path, pruning, calibrator)
    finally:  # the next job of a sweep, in this process, must start runs of its own
        finish_runs(trainer.loggers)


def fit_calibrate_test(
    cfg: DictConfig,
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    ckpt_path: str | None,
    pruning: OptunaPruning | None,
    calibrator: Calibrator | None,
) -> float | None:
    if datamodule.feature_cache:
        datamodule = with_feature_cache(model, datamodule)
    fit(cfg, trainer, model, datamodule, ckpt_path)
    checkpoint = trainer.checkpoint_callback
    score = (
        None
        if checkpoint is None or checkpoint.best_model_score is None
        else float(checkpoint.best_model_score)
    )
    best = checkpoint.best_model_path if checkpoint else ""
    write_fit_summary(cfg, trainer, score, best, why_stopped(trainer, pruning))
    if pruning is not None and pruning.pruned:
        raise optuna.TrialPruned(pruning.reason)
    if calibrator is not None:
        calibrate(trainer, model, datamodule, calibrator, best or None)
    final = {} if score is None else {f"best/{cfg.monitor}": score}
    if cfg.get("test", True):
        tested = run_tests(trainer, model, datamodule, cfg.paths.output_dir, best or None)
        final.update({key: tested[key] for key in TABLE_KEYS if key in tested})
    log_run_summary(trainer.loggers, run_overrides(cfg), final)
    log.info("Best %s: %s (%s)", cfg.monitor, score, best)
    return score


def why_stopped(trainer: pl.Trainer, pruning: OptunaPruning | None) -> str:
    """Why fitting ended: pruned (and why), early stopping, or all its epochs."""
    if pruning is not None and pruning.pruned:
        return pruning.reason
    stopper = trainer.early_stopping_callback
    if stopper is not None and stopper.stopped_epoch > 0:
        return f"early stopping after epoch {trainer.current_epoch}"
    return "completed"


@rank_zero_only
def write_fit_summary(
    cfg: DictConfig, trainer: pl.Trainer, score: float | None, best: str, stopped: str
) -> None:
    payload = {
        "monitor": cfg.monitor,
        "best_score": score,
        "best_checkpoint": best,
        "epochs_run": trainer.current_epoch,
        "max_epochs": trainer.max_epochs,
        "stopped": stopped,
    }
    write_json(Path(cfg.paths.output_dir) / FIT_SUMMARY_FILE, payload)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_cli(train, cfg)


if __name__ == "__main__":
    main()
