"""A sampler that never proposes a point the study already has while unexplored ones remain.

The original's search space is discrete (72 points), and TPE or random search on a small
discrete space soon draws a point that a finished, pruned or running trial already holds:
training it again wastes a whole trial. :class:`DistinctSampler` wraps any Optuna sampler,
lets it propose the whole point at once, and when that point is taken (and the space is
finite and not yet exhausted) asks again, then falls back to a seeded draw among the points
no trial holds. Once every point has a trial, the study stops asking (:func:`exhausted`,
:class:`~src.sweeps.study.StudyRunner`). Continuous spaces pass through unchanged: the
per-process seed (see :func:`worker_seed`) is what keeps their proposals apart.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)
MAX_ENUMERATED = 100_000  # larger spaces rarely collide; not worth listing
RETRIES = 8
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def worker_seed(seed: int | None, trials_so_far: int) -> int | None:
    """A sampler seed per ask: the study's seed and how many trials exist at that moment.

    Asking is serialised across workers, so two workers (or a rerun after a kill) never see
    the same count and never reuse a seed, while one worker alone stays reproducible.
    """
    if seed is None:
        return None
    digest = hashlib.sha256(f"{seed}:{trials_so_far}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def choices(distribution: BaseDistribution) -> list[Any] | None:
    """Every value a distribution can take, or None when it is continuous."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution):
        if distribution.log:
            return list(range(distribution.low, distribution.high + 1))
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        count = int(math.floor((distribution.high - distribution.low) / distribution.step)) + 1
        return [float(distribution.low + i * distribution.step) for i in range(count)]
    return None


def grid_size(space: Mapping[str, BaseDistribution]) -> int | None:
    """Number of points in a finite space, None if any dimension is continuous."""
    sizes = [choices(d) for d in space.values()]
    if any(s is None for s in sizes):
        return None
    return math.prod(len(s) for s in sizes)


def _key(params: Mapping[str, Any], names: list[str]) -> tuple:
    return tuple(round(v, 12) if isinstance(v, float) else v for v in (params[n] for n in names))


def taken_points(trials: list[FrozenTrial], names: list[str]) -> set[tuple]:
    """The points of ``names`` that finished, pruned, running or waiting trials hold."""
    return {
        _key(t.params, names) for t in trials if t.state in TAKEN and set(names) <= set(t.params)
    }


def exhausted(space: Mapping[str, BaseDistribution], trials: list[FrozenTrial]) -> bool:
    """Every point of a finite (enumerable) space is held by a trial."""
    size = grid_size(space)
    if size is None or size > MAX_ENUMERATED:
        return False
    return len(taken_points(trials, sorted(space))) >= size


class DistinctSampler(BaseSampler):
    """Wraps ``inner``; proposes each point of ``space`` jointly, avoiding taken points."""

    def __init__(
        self, inner: BaseSampler, space: Mapping[str, BaseDistribution], seed: int | None = None
    ) -> None:
        self.inner = inner
        self.space = dict(space)
        self.names = sorted(self.space)
        self.size = grid_size(self.space)
        self._rng = np.random.default_rng(seed)

    # the whole space is sampled "relatively", so the point is decided in one place
    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return dict(self.space)

    def sample_relative(self, study, trial: FrozenTrial, search_space) -> dict[str, Any]:
        if trial.params or "fixed_params" in trial.system_attrs:
            return {}  # a retried or enqueued trial keeps its parameters
        proposal = self._propose(study, trial)
        if self.size is None or self.size > MAX_ENUMERATED:
            return proposal
        taken = self._taken(study)
        if len(taken) >= self.size:
            log.warning("Every point of the search space has a trial; repeating one.")
            return proposal
        for _ in range(RETRIES):
            if _key(proposal, self.names) not in taken:
                return proposal
            proposal = self._propose(study, trial)
        return self._unexplored(taken)

    def sample_independent(self, study, trial, param_name, param_distribution) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
        self._rng = np.random.default_rng()

    def _propose(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        """The inner sampler's point: its joint part, then one value per remaining name."""
        joint = self.inner.infer_relative_search_space(study, trial)
        joint = {k: v for k, v in joint.items() if k in self.space}
        point = dict(self.inner.sample_relative(study, trial, joint)) if joint else {}
        for name in self.names:
            if name not in point:
                point[name] = self.inner.sample_independent(study, trial, name, self.space[name])
        return point

    def _taken(self, study: optuna.Study) -> set[tuple]:
        return taken_points(study.get_trials(deepcopy=False), self.names)

    def _unexplored(self, taken: set[tuple]) -> dict[str, Any]:
        free = [point for point in self._grid() if _key(point, self.names) not in taken]
        return free[int(self._rng.integers(len(free)))]

    def _grid(self) -> Iterator[dict[str, Any]]:
        axes = [choices(self.space[n]) for n in self.names]
        for values in itertools.product(*axes):
            yield dict(zip(self.names, values))
