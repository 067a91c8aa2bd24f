"""An Optuna study run as a sequence of Hydra jobs (used by the hyperband sweeper plugin)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import optuna
import yaml
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from src.errors import ConfigError, check_choice
from src.sweeps.space import as_override, search_space
from src.sweeps.summary import summarize

log = logging.getLogger(__name__)
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
BEST_PARAMS_FILE = "best_params.yaml"
CONFIG_GROUPS = (
    "model",
    "model/optimizer",
    "model/scheduler",
    "data",
    "trainer",
    "callbacks",
    "logger",
)
Launch = Callable[[Sequence[str], int], tuple[bool, Any]]


def local_file(storage: str) -> Path | None:
    """The file behind a SQLite or journal storage URL (None for server databases)."""
    for prefix in ("sqlite:///", "journal:///"):
        if storage.startswith(prefix):
            return Path(storage[len(prefix) :])
    return None


def make_storage(storage: str) -> str | optuna.storages.BaseStorage:
    """SQLite/PostgreSQL URLs as they are; ``journal:///path.log`` as a journal file."""
    if storage.startswith("journal:///"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(local_file(storage))))
    return storage


def build_sampler(spec: dict[str, Any]) -> optuna.samplers.BaseSampler:
    spec = dict(spec)
    name = check_choice("hparams_search.sampler.name", spec.pop("name", "tpe"), list(SAMPLERS))
    return SAMPLERS[name](**spec)


def build_pruner(spec: dict[str, Any]) -> optuna.pruners.BasePruner:
    spec = dict(spec)
    name = check_choice(
        "hparams_search.pruner.name", spec.pop("name", "hyperband"), ["hyperband", "none"]
    )
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.HyperbandPruner(**spec)


class StudyRunner:
    """Ask, launch, tell until the study holds ``n_trials`` trials (resuming if it exists)."""

    def __init__(
        self, settings: dict[str, Any], sweep_dir: Path, monitor: str = "val/f1_macro"
    ) -> None:
        self.sweep_dir = sweep_dir
        self.monitor = monitor
        self.study_name = settings["study_name"]
        self.storage_url = settings.get("storage") or f"sqlite:///{sweep_dir.resolve()}/study.db"
        self.n_trials = int(settings["n_trials"])
        self.direction = settings.get("direction", "maximize")
        self.sampler = build_sampler(settings.get("sampler") or {})
        self.pruner = build_pruner(settings.get("pruner") or {})
        self.space = search_space(settings.get("params") or {})

    def open_study(self) -> optuna.Study:
        path = local_file(self.storage_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.create_study(
            study_name=self.study_name,
            storage=make_storage(self.storage_url),
            sampler=self.sampler,
            pruner=self.pruner,
            direction=self.direction,
            load_if_exists=True,
        )

    def _lock(self):
        """Workers on one machine take turns to count and ask, so no worker overshoots."""
        path = local_file(self.storage_url)
        return FileLock(str(path) + ".lock") if path is not None else nullcontext()

    def _next_trial(self, study: optuna.Study) -> optuna.trial.Trial | None:
        with self._lock():
            if len(study.get_trials(deepcopy=False, states=COUNTED)) >= self.n_trials:
                return None
            return study.ask(self.space)

    def overrides(self, arguments: Sequence[str], trial: optuna.trial.Trial) -> list[str]:
        sampled = [as_override(key, value) for key, value in trial.params.items()]
        return [
            *arguments,
            *sampled,
            f"hparams_search.trial_number={trial.number}",
            as_override("hparams_search.storage", self.storage_url),
            f"hydra.sweep.subdir=trial_{trial.number}",
        ]

    def run(self, arguments: Sequence[str], launch: Launch) -> optuna.Study:
        study = self.open_study()
        while (trial := self._next_trial(study)) is not None:
            completed, value = launch(self.overrides(arguments, trial), trial.number)
            if completed and value is not None:
                study.tell(trial, float(value))
            elif type(value).__name__ == "TrialPruned":
                study.tell(trial, state=TrialState.PRUNED)
                log.info("Trial %d pruned: %s", trial.number, value)
            else:
                study.tell(trial, state=TrialState.FAIL)
                log.error("Trial %d failed: %r", trial.number, value)
        summarize(self.sweep_dir, self.monitor)
        write_best(study, self.sweep_dir)
        return study


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in dotted.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def write_best(study: optuna.Study, sweep_dir: Path) -> Path | None:
    """``best_params.yaml`` and ``experiment/<study>_best.yaml`` (retrains the winner)."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        log.warning("No completed trial in study %s yet: no best parameters.", study.study_name)
        return None
    best = study.best_trial
    (sweep_dir / BEST_PARAMS_FILE).write_text(
        yaml.safe_dump(
            {
                "study": study.study_name,
                "trial": best.number,
                "value": best.value,
                "params": best.params,
            },
            sort_keys=False,
        )
    )
    trial_dir = sweep_dir / f"trial_{best.number}" / ".hydra"
    if not (trial_dir / "config.yaml").is_file():
        raise ConfigError(f"{trial_dir} is missing: the best trial's config cannot be exported.")
    name = f"{study.study_name}_best"
    path = sweep_dir / "experiment" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(experiment_yaml(trial_dir, study.study_name, best))
    log.info(
        "Best trial %d (%.4f); retrain it with: python -m src.train --config-dir %s experiment=%s",
        best.number,
        best.value,
        sweep_dir,
        name,
    )
    return path


def without_search_references(config: DictConfig) -> dict[str, Any]:
    """Plain config, with values that point into ``hparams_search`` (gone later) resolved."""

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, str) and "${hparams_search." in node:
            return OmegaConf.select(config, path)
        return node

    return walk(OmegaConf.to_container(config, resolve=False), "")


def experiment_yaml(trial_dir: Path, study_name: str, best: optuna.trial.FrozenTrial) -> str:
    """The best trial's own config (group choices and values), as an experiment config."""
    config = without_search_references(OmegaConf.load(trial_dir / "config.yaml"))
    choices = yaml.safe_load((trial_dir / "hydra.yaml").read_text())["hydra"]["runtime"]["choices"]
    defaults = [
        {f"override /{group}": choices[group]}
        for group in CONFIG_GROUPS
        if choices.get(group) is not None
    ]
    body = {
        key: config[key] for key in ("seed", "monitor", "model", "data", "trainer") if key in config
    }
    header = (
        f"# @package _global_\n# Best trial {best.number} of Optuna study {study_name}: "
        f"{best.value:.4f}\n# params: {best.params}\n"
    )
    return header + yaml.safe_dump({"defaults": defaults, **body}, sort_keys=False)
