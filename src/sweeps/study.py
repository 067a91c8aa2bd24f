"""An Optuna study run as a sequence of Hydra jobs (used by the hyperband sweeper plugin)."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from src.errors import ConfigError, StoppedBySignal, check_choice
from src.models.metrics import MONITOR
from src.runs.files import write_json, write_text
from src.sweeps import storage as stores
from src.sweeps.distinct import DistinctSampler, exhausted, grid_size, worker_seed
from src.sweeps.space import as_override, search_space
from src.sweeps.summary import STATUS_FILE, summarize

log = logging.getLogger(__name__)
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
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


def build_sampler(spec: dict[str, Any]) -> optuna.samplers.BaseSampler:
    spec = dict(spec)
    name = check_choice("hparams_search.sampler.name", spec.pop("name", "tpe"), list(SAMPLERS))
    return SAMPLERS[name](**spec)


def hopeless_after(spec: Mapping[str, Any]) -> int | None:
    """From which epoch a trial stops itself when hopeless (:mod:`src.sweeps.pruning`, the
    trials' own rule, not Optuna's): the pruner's ``min_resource``; None with
    ``stop_hopeless: false``."""
    stop = spec.get("stop_hopeless", True)
    if not isinstance(stop, bool):
        raise ConfigError(
            f"hparams_search.pruner.stop_hopeless must be true or false (got {stop!r})."
        )
    return int(spec.get("min_resource", 1)) if stop else None


def build_pruner(spec: dict[str, Any]) -> optuna.pruners.BasePruner:
    hopeless_after(spec)  # checked here, before any trial runs
    spec = {key: value for key, value in spec.items() if key != "stop_hopeless"}
    name = check_choice(
        "hparams_search.pruner.name", spec.pop("name", "hyperband"), ["hyperband", "none"]
    )
    known = list(inspect.signature(optuna.pruners.HyperbandPruner).parameters)
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ConfigError(
            f"hparams_search.pruner has no setting {', '.join(unknown)}; its settings are "
            f"name, stop_hopeless, {', '.join(known)}."
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.HyperbandPruner(**spec)


class StudyRunner:
    """Ask, launch, tell until the study holds ``n_trials`` trials (resuming if it exists).

    Any number of processes may run this on one study: they take turns to ask
    (:func:`~src.sweeps.storage.asking_lock`), each ask uses a fresh sampler seed, taken
    points of a finite space are not proposed again, and a trial whose worker died is
    failed and run once more with the same parameters. A worker leaves only when every
    trial is finished, so a study never ends with a trial stuck in RUNNING.
    """

    def __init__(self, settings: dict[str, Any], sweep_dir: Path, monitor: str = MONITOR) -> None:
        self.sweep_dir = sweep_dir
        self.monitor = monitor
        self.study_name = settings["study_name"]
        self.storage_url = stores.check_url(
            settings.get("storage") or f"sqlite:///{sweep_dir.resolve()}/study.db"
        )
        self.n_trials = int(settings["n_trials"])
        self.direction = settings.get("direction", "maximize")
        self.sampler_spec = dict(settings.get("sampler") or {})
        build_sampler(self.sampler_spec)  # fail early on a bad name or argument
        self.pruner = build_pruner(settings.get("pruner") or {})
        self.space = search_space(settings.get("params") or {})
        workers = settings.get("workers") or {}
        self.heartbeat_interval = int(workers.get("heartbeat_interval", 60))
        self.grace_period = int(workers.get("grace_period", 3 * self.heartbeat_interval))
        self.poll_s = float(workers.get("poll_interval", 5))
        if self.heartbeat_interval < 1 or self.grace_period <= self.heartbeat_interval:
            raise ConfigError(
                "hparams_search.workers: heartbeat_interval must be >= 1 s and grace_period "
                f"longer than it (got {self.heartbeat_interval} and {self.grace_period})."
            )

    def open_study(self) -> optuna.Study:
        return optuna.create_study(
            study_name=self.study_name,
            storage=stores.make_storage(
                self.storage_url, self.heartbeat_interval, self.grace_period
            ),
            pruner=self.pruner,
            direction=self.direction,
            load_if_exists=True,
        )

    def _sampler(self, trials_so_far: int) -> DistinctSampler:
        seed = worker_seed(self.sampler_spec.get("seed"), trials_so_far)
        inner = build_sampler({**self.sampler_spec, "seed": seed})
        return DistinctSampler(inner, self.space, seed=seed)

    def _next_trial(self, study: optuna.Study) -> optuna.trial.Trial | None | bool:
        """A claimed trial; None when the study is done; False to wait for others' trials."""
        with stores.asking_lock(self.storage_url, self.study_name):
            for number in stores.reap_dead_trials(study, self.grace_period):
                self._record_lost(number)
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if waiting or (stores.counted(trials) < self.n_trials and not self._exhausted(trials)):
                study.sampler = self._sampler(len(trials))
                trial = study.ask(self.space)
                stores.claim(study, trial)
                return trial
            return False if any(t.state == TrialState.RUNNING for t in trials) else None

    def _exhausted(self, trials: list[optuna.trial.FrozenTrial]) -> bool:
        """Every point of a finite space has a trial: another would train one again, with
        the same seed, to the same curve; the study ends short of n_trials instead."""
        if not exhausted(self.space, trials):
            return False
        log.warning(
            "All %d points of the search space have a trial: study %s ends at %d of "
            "n_trials=%d instead of training a point again.",
            grid_size(self.space),
            self.study_name,
            stores.counted(trials),
            self.n_trials,
        )
        return True

    def _record_lost(self, number: int) -> None:
        """The lost trial's row in the summary says what happened to it."""
        folder = self.sweep_dir / f"trial_{number}"
        if folder.is_dir():
            write_json(
                folder / STATUS_FILE,
                {
                    "status": "failed",
                    "score": None,
                    "error": "its worker died (killed, or no heartbeat); "
                    "queued again with the same parameters",
                },
            )

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
            if trial is False:  # another worker's trial is running; it may still die
                time.sleep(self.poll_s)
                continue
            with stores.heartbeat(study, trial, self.heartbeat_interval):
                completed, value = launch(self.overrides(arguments, trial), trial.number)
            if isinstance(value, StoppedBySignal):  # the cluster wants this process to stop
                self._requeue(study, trial)
                summarize(self.sweep_dir, self.monitor)
                raise StoppedBySignal(
                    f"Study {self.study_name} stopped by SIGTERM during trial {trial.number}, "
                    "which is queued to run again: rerun the same command to continue."
                )
            self._tell(study, trial, completed, value)
        frame = summarize(self.sweep_dir, self.monitor, planned=self.n_trials)
        write_best(study, self.sweep_dir, frame)
        return study

    @staticmethod
    def _requeue(study: optuna.Study, trial: optuna.trial.Trial) -> None:
        """FAIL the interrupted trial and queue it again with the same parameters."""
        study.tell(trial, state=TrialState.FAIL)
        frozen = study._storage.get_trial(trial._trial_id)
        stores.Retry(max_retry=stores.MAX_RETRY)(study, frozen)

    @staticmethod
    def _tell(study: optuna.Study, trial: optuna.trial.Trial, completed: bool, value) -> None:
        try:
            if completed and value is not None:
                study.tell(trial, float(value))
            elif type(value).__name__ == "TrialPruned":
                study.tell(trial, state=TrialState.PRUNED)
                log.info("Trial %d pruned: %s", trial.number, value)
            else:
                study.tell(trial, state=TrialState.FAIL)
                log.error("Trial %d failed: %r", trial.number, value)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as err:
            # another worker judged this trial dead (a missed heartbeat) and queued it again
            log.warning("Trial %d was already closed by another worker: %s", trial.number, err)


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in dotted.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def trial_stops(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per trial of a summary: its status, the epochs it ran, and why it stopped."""
    stops = []
    for row in frame[frame["run"].astype(str).str.startswith("trial_")].to_dict("records"):
        epochs, stopped = row.get("epochs"), row.get("stopped")
        stops.append(
            {
                "trial": int(str(row["run"]).removeprefix("trial_")),
                "status": row.get("status"),
                "epochs": None if pd.isna(epochs) else int(epochs),
                "stopped": stopped if isinstance(stopped, str) and stopped else row.get("status"),
            }
        )
    return sorted(stops, key=lambda stop: stop["trial"])


def write_best(study: optuna.Study, sweep_dir: Path, frame: pd.DataFrame) -> Path | None:
    """``best_params.yaml`` and ``experiment/<study>_best.yaml`` (retrains the winner).

    From the study's summary ``frame``, best_params.yaml also gives the trial-epochs spent
    and, per trial, where and why it stopped."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        log.warning("No completed trial in study %s yet: no best parameters.", study.study_name)
        return None
    best = study.best_trial
    write_text(
        sweep_dir / BEST_PARAMS_FILE,
        yaml.safe_dump(
            {
                "study": study.study_name,
                "trial": best.number,
                "value": best.value,
                "params": best.params,
                "epochs": frame.attrs.get("budget"),
                "trials": trial_stops(frame),
            },
            sort_keys=False,
        ),
    )
    trial_dir = sweep_dir / f"trial_{best.number}" / ".hydra"
    if not (trial_dir / "config.yaml").is_file():
        raise ConfigError(f"{trial_dir} is missing: the best trial's config cannot be exported.")
    name = f"{study.study_name}_best"
    path = sweep_dir / "experiment" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    write_text(path, experiment_yaml(trial_dir, study.study_name, best))
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
