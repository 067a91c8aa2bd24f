"""A Hydra sweeper that runs an Optuna study whose pruner really stops runs.

The Hydra Optuna sweeper plugin never hands the trial to the task, so it cannot prune.
This one asks the study for a trial, launches it as an ordinary Hydra job with the
sampled overrides plus ``hparams_search.trial_number`` and ``hparams_search.storage``;
the job re-opens the trial from the storage (``src.sweeps.pruning``), reports
``val/f1_macro`` after every epoch and stops when the pruner says so. Settings come from
the ``hparams_search`` node of the composed config (``conf/hparams_search/*.yaml``).
"""
# no `from __future__ import annotations` here: Hydra imports plugin modules in a way
# that breaks string annotations of dataclasses.

import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class HyperbandSweeperConf:
    _target_: str = "hydra_plugins.rare_species_sweeper.hyperband_sweeper.HyperbandSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="hyperband",
    node=HyperbandSweeperConf,
    provider="rare_species",
)


class HyperbandSweeper(Sweeper):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from src.runs.files import write_with  # the project's code, imported late
        from src.sweeps.study import StudyRunner

        settings = self.config.get("hparams_search")
        if settings is None:
            raise ValueError("hydra/sweeper=hyperband needs an hparams_search=... config.")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_with(sweep_dir / "multirun.yaml", lambda path: OmegaConf.save(self.config, path))
        runner = StudyRunner(OmegaConf.to_container(settings, resolve=True), sweep_dir)
        if self.config.get("monitor"):
            runner.monitor = self.config.monitor
        return runner.run(arguments, self._launch)

    def _launch(self, overrides: Sequence[str], job_index: int):
        (result,) = self.launcher.launch([list(overrides)], initial_job_idx=job_index)
        gc.collect()  # trials run one after another; free memory in between
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        completed = result.status == JobStatus.COMPLETED
        return completed, result._return_value
