"""Search spaces written in YAML, turned into Optuna distributions.

params:
  model.optimizer.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
  model.net.head.dropout: {type: float, low: 0.4, high: 0.7, step: 0.1}
  model.net.unfreeze_last: {type: int, low: 0, high: 40, step: 2}
  model.net.freeze: {type: categorical, choices: [all, partial]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from src.errors import ConfigError


def distribution(key: str, spec: Mapping[str, Any]) -> BaseDistribution:
    kind = spec.get("type")
    if kind == "categorical":
        return CategoricalDistribution(list(spec["choices"]))
    if kind in ("float", "int"):
        unknown = set(spec) - {"type", "low", "high", "log", "step"}
        if unknown:
            raise ConfigError(f"search space {key}: unknown field(s) {', '.join(sorted(unknown))}.")
        log, step = bool(spec.get("log", False)), spec.get("step")
        try:
            if kind == "float":
                return FloatDistribution(
                    float(spec["low"]),
                    float(spec["high"]),
                    log=log,
                    step=None if step is None else float(step),
                )
            return IntDistribution(
                int(spec["low"]), int(spec["high"]), log=log, step=int(step or 1)
            )
        except (KeyError, ValueError) as err:
            raise ConfigError(f"search space {key}: {err}") from err
    raise ConfigError(f"search space {key}: type must be float, int or categorical, not {kind!r}.")


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Mapping[str, Any]]:
    """Nested or dotted keys -> ``{"model.optimizer.lr": spec}``; a spec is a node with ``type``."""
    flat: dict[str, Mapping[str, Any]] = {}
    for key, value in params.items():
        path = f"{prefix}{key}"
        if value is None:  # `key: null` removes an inherited entry
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"search space {path}: expected a mapping with a type, not {value!r}."
            )
        flat.update({path: value} if "type" in value else flatten(value, f"{path}."))
    return flat


def search_space(params: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """Distributions by override key; nesting lets the command line change one entry."""
    flat = flatten(params or {})
    if not flat:
        raise ConfigError("hparams_search.params is empty: give at least one parameter to tune.")
    return {key: distribution(key, spec) for key, spec in flat.items()}


def as_override(key: str, value: Any) -> str:
    """A Hydra command-line override for one sampled value."""
    if isinstance(value, float):
        return f"{key}={value!r}"
    if isinstance(value, str) and any(c in value for c in " ,=[]{}()'\""):
        return f"{key}='{value}'"
    return f"{key}={value}"
