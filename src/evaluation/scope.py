"""How well an out-of-scope score finds the images that are not animals."""

from __future__ import annotations

import numpy as np
import pandas as pd


def scope_auroc(scores: np.ndarray, outliers: np.ndarray) -> float:
    """AUROC of detecting ``outliers`` by a low score: the probability that an outlier
    scores below an in-scope image (ties count half); NaN unless both kinds are present."""
    scores = np.asarray(scores, dtype=np.float64)
    outliers = np.asarray(outliers, dtype=bool)
    n_out, n_in = int(outliers.sum()), int((~outliers).sum())
    if not n_out or not n_in:
        return float("nan")
    ranks = pd.Series(-scores).rank(method="average").to_numpy()  # high rank: low score
    return float((ranks[outliers].sum() - n_out * (n_out + 1) / 2) / (n_out * n_in))
