"""What every entry point shares: config resolvers, and a runner that turns bad input into
one line instead of a traceback."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.data.synthetic import synthetic_dir_name
from src.errors import UserFacingError
from src.runs.files import error_chain, output_error_behind
from src.runs.precision import auto_precision

log = logging.getLogger(__name__)


def run_label(output_dir: str) -> str:
    """``${run_label:${paths.output_dir}}``: the run folder's last two parts
    (``runs/2026-11-29_17-00-00``, ``<sweep date>/3``), a name trackers can show."""
    return "/".join(Path(output_dir).parts[-2:])


def no_env(name: str) -> bool:
    """``${no_env:WANDB_API_KEY}``: true when the variable is unset or empty."""
    return not os.environ.get(name)


def register_resolvers() -> None:
    for name, function in (
        ("auto_precision", auto_precision),
        ("synthetic_dir", synthetic_dir_name),
        ("no_env", no_env),
        ("run_label", run_label),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


def run_cli(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run an entry point's task; bad data or options end in one line, not a traceback."""
    try:
        return task(cfg)
    except Exception as err:
        cause = user_facing_cause(err)
        if cause is None or in_multirun():
            raise  # a sweep records the failure and goes on with the next job
        log_to_files(cause)
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(1)


def log_to_files(cause: Exception) -> None:
    """The error into the run's log file (train.log) only: the terminal gets one line."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (cause,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def user_facing_cause(err: BaseException) -> UserFacingError | None:
    """The UserFacingError behind ``err`` (Hydra wraps errors raised while instantiating);
    else the OutputError sentence for a full or read-only disk met by any library."""
    cause = next((e for e in error_chain(err) if isinstance(e, UserFacingError)), None)
    return cause or output_error_behind(err)
