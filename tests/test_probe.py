"""Linear probe: C is chosen on the validation images, by the monitored metric."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from src.errors import ConfigError
from src.evaluation.fewshot import l2_normalize
from src.evaluation.probe import LinearProbe
from src.models.metrics import score_probabilities

GRID = [0.01, 1.0, 100.0]
RNG = np.random.default_rng(0)
CENTRES = RNG.standard_normal((3, 8)) * 0.6


def blobs(n_per_class: int, noise: float = 1.0):
    labels = np.repeat(np.arange(3), n_per_class)
    return CENTRES[labels] + noise * RNG.standard_normal((len(labels), 8)), labels


TRAIN, VAL, TEST = blobs(20), blobs(15), blobs(10)


def val_scores(c: float, val=VAL) -> float:
    model = LogisticRegression(C=c, max_iter=1000, random_state=0).fit(
        l2_normalize(TRAIN[0]), TRAIN[1]
    )
    probabilities = model.predict_proba(l2_normalize(val[0]))
    return score_probabilities(probabilities, val[1], 3, "val")["val/acc"]


def test_c_is_the_best_on_val_and_the_model_fitted_with_it_is_tested():
    probe = LinearProbe(3, GRID, monitor="val/acc", seed=0).fit(TRAIN, VAL)
    expected = [val_scores(c) for c in GRID]
    assert [row["val/acc"] for row in probe.results_] == pytest.approx(expected)
    chosen = probe.C_
    assert chosen == GRID[int(np.argmax(expected))]  # the first (smallest C) of ties
    reference = LogisticRegression(C=probe.C_, max_iter=1000, random_state=0)
    reference.fit(l2_normalize(TRAIN[0]), TRAIN[1])
    np.testing.assert_allclose(
        probe.predict_proba(TEST[0]), reference.predict_proba(l2_normalize(TEST[0])), atol=1e-12
    )


def test_the_validation_images_decide():
    on_val = LinearProbe(3, GRID, monitor="val/acc").fit(TRAIN, VAL).C_
    on_train = LinearProbe(3, GRID, monitor="val/acc").fit(TRAIN, TRAIN).C_
    assert on_val == GRID[int(np.argmax([val_scores(c) for c in GRID]))]
    assert on_train == GRID[int(np.argmax([val_scores(c, TRAIN) for c in GRID]))]
    assert on_val != on_train  # these data prefer another C on val than on train


def test_ties_go_to_the_smallest_c():
    x, y = blobs(10, noise=0.01)
    # val labels no classifier can get right, whatever C: every C ties on val at 0
    wrong = (y + 1) % 3
    probe = LinearProbe(3, [100.0, 1.0, 10.0], monitor="val/acc").fit((x, y), (x, wrong))
    assert probe.C_ == 1.0 and [row["C"] for row in probe.results_] == [1.0, 10.0, 100.0]


def test_classes_absent_from_training_get_probability_zero():
    x, y = TRAIN
    probe = LinearProbe(4, [1.0]).fit((x, y), VAL)
    probabilities = probe.predict_proba(TEST[0])
    assert probabilities.shape == (len(TEST[0]), 4) and (probabilities[:, 3] == 0).all()


def test_bad_settings_are_one_sentence():
    with pytest.raises(ConfigError, match="probe.monitor='val/loss' is not one of"):
        LinearProbe(3, GRID, monitor="val/loss")
    with pytest.raises(ConfigError, match="probe.C="):
        LinearProbe(3, [0.0, 1.0])
    with pytest.raises(ConfigError, match="validation split, which is empty"):
        LinearProbe(3, GRID).fit(TRAIN, (np.zeros((0, 8)), np.zeros(0, dtype=int)))
