"""Linear probe: scikit-learn logistic regression on L2-normalised image embeddings.

The regularisation C is chosen from a small grid by a validation metric (the one training
runs follow, ``val/f1_macro``, by default); the model fitted on the training images with that
C is the one tested.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from src.errors import ConfigError
from src.evaluation.fewshot import l2_normalize
from src.models.metrics import METRIC_NAMES, score_probabilities

log = logging.getLogger(__name__)


class LinearProbe:
    """``fit(train, val)`` picks C on val; ``predict_proba`` gives all ``num_classes`` columns."""

    def __init__(
        self,
        num_classes: int,
        grid: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0),
        monitor: str = "val/f1_macro",
        max_iter: int = 1000,
        seed: int = 0,
    ) -> None:
        names = [f"val/{name}" for name in METRIC_NAMES]
        if monitor not in names:
            raise ConfigError(f"probe.monitor={monitor!r} is not one of {', '.join(names)}.")
        values = list(grid)
        if not values or any(not isinstance(c, int | float) or c <= 0 for c in values):
            raise ConfigError(f"probe.C={values} is not allowed: use a list of numbers > 0.")
        self.num_classes, self.grid, self.monitor = num_classes, sorted(values), monitor
        self.max_iter, self.seed = max_iter, seed

    def _fit_one(self, c: float, x: np.ndarray, y: np.ndarray):
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=self.max_iter, random_state=self.seed)
        return model.fit(x, y)

    def _proba(self, model, x: np.ndarray) -> np.ndarray:
        """Columns for every class, also those absent from training (probability 0)."""
        probabilities = np.zeros((len(x), self.num_classes))
        probabilities[:, model.classes_] = model.predict_proba(l2_normalize(x))
        return probabilities

    def fit(
        self, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]
    ) -> LinearProbe:
        (x, y), (val_x, val_y) = train, val
        if len(val_y) == 0:
            raise ConfigError("The linear probe chooses C on the validation split, which is empty.")
        x = l2_normalize(x)
        self.results_: list[dict[str, Any]] = []
        best = None
        for c in self.grid:  # ties go to the smaller C (the stronger regularisation)
            model = self._fit_one(c, x, y)
            scores = score_probabilities(self._proba(model, val_x), val_y, self.num_classes, "val")
            self.results_.append({"C": c, **scores})
            log.info("C=%g: %s %.4f", c, self.monitor, scores[self.monitor])
            if best is None or scores[self.monitor] > best[0]:
                best = (scores[self.monitor], c, model)
        _, self.C_, self.model_ = best
        log.info("Chose C=%g on %s.", self.C_, self.monitor)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self._proba(self.model_, x)
