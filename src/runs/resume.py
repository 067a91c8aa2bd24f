"""Where a run continues from, and how it stops when asked to (SIGTERM).

``ckpt_path=last`` must find ``last.ckpt``; ``ckpt_path=auto`` (and a requeued SLURM job)
takes the newest checkpoint there is; a SIGTERM saves the state (:class:`StopOnSigterm`)
and ends the run with one line that says how to resume.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from src.errors import StoppedBySignal
from src.runs.checkpoints import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)
# the data module's samplers skip the batches a mid-epoch checkpoint had done (see
# RareSpeciesDataModule.epoch_sampler), which Lightning cannot know from the loader
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")


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
        # weights_only: resume_path has checked the file loads safely, and so it is loaded
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
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
