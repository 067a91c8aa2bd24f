"""Calibrated answers: a temperature, prediction sets and an out-of-scope cut, fitted on val.

:class:`Calibrator` (the ``calibration`` config group) fits a :class:`Calibration` on the
validation split's logits and labels, after training:

- **temperature** ``T``: the one that minimises the negative log-likelihood of
  ``softmax(logits / T)`` on val (Guo et al., 2017). It changes no prediction, only how
  sure the probabilities say they are.
- **split-conformal prediction sets** (score ``1 - p(true class)``, "LAC"): the sorted
  val scores are kept, so a set for any ``alpha`` follows: with ``n`` val images, the
  threshold ``q`` is the ``ceil((n + 1)(1 - alpha))``-th smallest score, and a set holds
  every class with ``p >= 1 - q``. If val and the new images are
  exchangeable (drawn alike), a set holds the true class with probability at least
  ``1 - alpha``, whatever the model. A set may be empty: no class is plausible enough.
  With too few val images for ``alpha`` (``ceil((n + 1)(1 - alpha)) > n``) every set holds
  every class.
- **out-of-scope score**: ``energy`` (``T * logsumexp(logits / T)``, Liu et al., 2020) or
  ``msp`` (the top calibrated probability); higher is more like the training data. The
  sorted val scores are kept; an image whose score is below the ``1 - keep`` quantile of
  val's is flagged (``keep=0.95``: 5 % of val images would be flagged).

Everything is stored in the checkpoint (``Calibration.to_dict``) and used by evaluate,
predict and export.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from src.errors import ConfigError, check_choice

CALIBRATION_KEY = "calibration"  # a checkpoint's entry for its Calibration.to_dict()
SCOPE_SCORES: tuple[str, ...] = ("energy", "msp")
ECE_BINS = 15
LOG_T_RANGE = (-3.0, 3.0)  # T between 0.05 and 20: beyond that val says nothing useful


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    top = scaled.max(axis=1, keepdims=True)
    return scaled - top - np.log(np.exp(scaled - top).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes under ``softmax(logits / T)``."""
    log_p = log_softmax(logits, temperature)
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 80) -> float:
    """The temperature of least NLL, by golden-section search over ``log T``.

    NLL is convex in ``1 / T``, so it has one minimum along ``log T``: the search finds it
    to ~1e-15 relative precision in 80 steps, deterministically. 1.0 without images.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    ratio = (math.sqrt(5) - 1) / 2
    low, high = LOG_T_RANGE
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(steps):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, labels, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((low + high) / 2))


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of the top probability: mean confidence, accuracy and count
    (NaN confidence/accuracy in an empty bin)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(1) if len(probabilities) else np.zeros(0)
    correct = probabilities.argmax(1) == np.asarray(labels) if len(probabilities) else confidence
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # (k/B, (k+1)/B]
    count = np.bincount(which, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(which, weights=correct.astype(float), minlength=bins) / count
    return mean_confidence, accuracy, count


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the count-weighted mean gap between accuracy and confidence over ``bins``
    equal-width bins of the top probability; NaN without images."""
    confidence, accuracy, count = reliability_bins(probabilities, labels, bins)
    if count.sum() == 0:
        return float("nan")
    seen = count > 0
    return float(np.sum(count[seen] * np.abs(accuracy[seen] - confidence[seen])) / count.sum())


def scope_scores(logits: np.ndarray, temperature: float, score: str) -> np.ndarray:
    """How much each image looks like the training data (higher: more); see the module."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    if check_choice("calibration.out_of_scope", score, SCOPE_SCORES) == "msp":
        return softmax(logits, temperature).max(1)
    top = scaled.max(axis=1)
    return temperature * (top + np.log(np.exp(scaled - top[:, None]).sum(axis=1)))


def conformal_quantile(sorted_scores: np.ndarray, alpha: float) -> float:
    """The split-conformal threshold for ``alpha`` from sorted calibration scores."""
    n = len(sorted_scores)
    k = math.ceil((n + 1) * (1 - alpha))
    return float("inf") if k > n else float(sorted_scores[k - 1])


@dataclass(frozen=True)
class Calibration:
    """What :class:`Calibrator` learnt from val; plain data, so checkpoints keep it."""

    temperature: float
    alpha: float
    conformal_scores: tuple[float, ...]  # val's 1 - p(true), sorted
    out_of_scope: str
    keep: float
    scope_scores: tuple[float, ...]  # val's out-of-scope scores, sorted

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits, self.temperature)

    def set_threshold(self, alpha: float | None = None) -> float:
        """``q``: a class is in an image's set when ``1 - p <= q``."""
        alpha = self.alpha if alpha is None else check_alpha(alpha)
        return conformal_quantile(np.asarray(self.conformal_scores), alpha)

    def prediction_sets(self, probabilities: np.ndarray, alpha: float | None = None) -> np.ndarray:
        """``(N, C)`` booleans: the classes in each image's prediction set."""
        return 1.0 - np.asarray(probabilities) <= self.set_threshold(alpha)

    def scope_threshold(self, keep: float | None = None) -> float:
        """Images scoring below this are flagged as out of scope."""
        keep = self.keep if keep is None else check_keep(keep)
        scores = np.asarray(self.scope_scores)
        if not len(scores):
            return float("-inf")
        return float(scores[min(len(scores) - 1, int(math.floor((1 - keep) * len(scores))))])

    def scope(self, logits: np.ndarray) -> np.ndarray:
        return scope_scores(logits, self.temperature, self.out_of_scope)

    def out_of_scope_flags(self, logits: np.ndarray, keep: float | None = None) -> np.ndarray:
        """Whether each image is out of scope: its score below :meth:`scope_threshold`
        (predict compares the scores it shows the same way)."""
        return self.scope(logits) < self.scope_threshold(keep)

    def to_dict(self) -> dict:
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        values = dict(values)
        for key in ("conformal_scores", "scope_scores"):
            values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


def check_share(key: str, value: object, hint: str, one_allowed: bool = False) -> float:
    """``value`` as a float in (0, 1) (or (0, 1]); else a ConfigError naming ``key``."""
    try:
        share = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        share = math.nan
    if isinstance(value, bool) or not (0 < share < 1 or (one_allowed and share == 1)):
        bounds = "in (0, 1]" if one_allowed else "between 0 and 1"
        raise ConfigError(f"{key}={value!r} is not allowed: use a number {bounds} ({hint}).")
    return share


def check_alpha(alpha: object, key: str = "alpha") -> float:
    return check_share(key, alpha, "0.1: sets that hold the true class 90 % of the time")


def check_keep(keep: object, key: str = "keep") -> float:
    hint = "the share of val images the out-of-scope cut lets through; 0.95 flags 5 %"
    return check_share(key, keep, hint, one_allowed=True)


class Calibrator:
    """Fits a :class:`Calibration` on val logits and labels (see the module docstring).

    ``temperature=False`` keeps ``T = 1`` (sets and the cut on the raw softmax).
    """

    def __init__(
        self,
        alpha: float = 0.1,
        out_of_scope: str = "energy",
        keep: float = 0.95,
        temperature: bool = True,
    ) -> None:
        self.alpha = check_alpha(alpha, "calibration.alpha")
        self.out_of_scope = check_choice("calibration.out_of_scope", out_of_scope, SCOPE_SCORES)
        self.keep = check_keep(keep, "calibration.keep")
        self.temperature = bool(temperature)

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> Calibration:
        logits = np.asarray(logits, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        temperature = fit_temperature(logits, labels) if self.temperature else 1.0
        probabilities = softmax(logits, temperature)
        true_p = probabilities[np.arange(len(labels)), labels]
        return Calibration(
            temperature=temperature,
            alpha=self.alpha,
            conformal_scores=tuple(np.sort(1.0 - true_p).tolist()),
            out_of_scope=self.out_of_scope,
            keep=self.keep,
            scope_scores=tuple(
                np.sort(scope_scores(logits, temperature, self.out_of_scope)).tolist()
            ),
        )
