"""Temperature, ECE, conformal sets and the out-of-scope cut (src/evaluation/calibration.py)."""

import math

import numpy as np
import pytest

from src.errors import ConfigError
from src.evaluation.calibration import (
    Calibration,
    Calibrator,
    conformal_quantile,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
    scope_scores,
    softmax,
)


def sample(rng: np.random.Generator, n: int, classes: int = 10, sharpness: float = 1.0):
    """Logits whose softmax is calibrated: each label is drawn from softmax(logits); then
    ``sharpness`` > 1 makes the model overconfident by that factor."""
    logits = rng.normal(0, 2.0, size=(n, classes))
    p = softmax(logits)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return logits * sharpness, labels


def test_the_temperature_undoes_a_known_overconfidence():
    logits, labels = sample(np.random.default_rng(0), 4000, sharpness=3.0)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    # the search found the minimum: a little either way is worse
    best = nll(logits, labels, temperature)
    assert best < nll(logits, labels, temperature * 1.05)
    assert best < nll(logits, labels, temperature / 1.05)
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, int)) == 1.0


def test_ece_is_lower_after_temperature_scaling_of_an_overconfident_model():
    rng = np.random.default_rng(1)
    val_logits, val_labels = sample(rng, 3000, sharpness=4.0)
    test_logits, test_labels = sample(rng, 3000, sharpness=4.0)
    calibration = Calibrator().fit(val_logits, val_labels)
    before = expected_calibration_error(softmax(test_logits), test_labels)
    after = expected_calibration_error(calibration.probabilities(test_logits), test_labels)
    assert before > 0.1 and after < before / 3


def test_ece_equals_a_hand_computation():
    # bins of width 1/15, right-closed: top probabilities 0.95 -> bin 14, 0.9 -> 13,
    # 0.55 -> 8, 0.61 -> 9; rows 0, 1 and 3 are right
    probabilities = np.array(
        [[0.95, 0.05, 0.0], [0.05, 0.9, 0.05], [0.45, 0.55, 0.0], [0.2, 0.19, 0.61]]
    )
    labels = np.array([0, 1, 0, 2])
    confidence, accuracy, count = reliability_bins(probabilities, labels)
    assert [i for i in range(15) if count[i]] == [8, 9, 13, 14] and count.sum() == 4
    assert accuracy[8] == 0 and accuracy[13] == 1 and confidence[9] == pytest.approx(0.61)
    expected = (abs(1 - 0.95) + abs(1 - 0.9) + abs(0 - 0.55) + abs(1 - 0.61)) / 4
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected)
    assert math.isnan(expected_calibration_error(np.zeros((0, 3)), np.zeros(0, int)))


def test_conformal_sets_cover_at_least_one_minus_alpha_on_average():
    rng = np.random.default_rng(2)
    coverages = []
    for _ in range(40):
        val_logits, val_labels = sample(rng, 200)
        test_logits, test_labels = sample(rng, 200)
        calibration = Calibrator(alpha=0.1).fit(val_logits, val_labels)
        sets = calibration.prediction_sets(calibration.probabilities(test_logits))
        coverages.append(sets[np.arange(len(test_labels)), test_labels].mean())
        assert sets.sum(1).mean() < 10  # not every class: the sets say something
    assert np.mean(coverages) >= 0.9 - 0.01
    # and not much more than asked: at most 1 - alpha + 1 / (n + 1) in expectation
    assert np.mean(coverages) <= 0.9 + 1 / 201 + 0.02


def test_a_smaller_alpha_gives_larger_sets_and_too_few_images_give_every_class():
    logits, labels = sample(np.random.default_rng(3), 300)
    calibration = Calibrator().fit(logits, labels)
    p = calibration.probabilities(logits)
    assert calibration.prediction_sets(p, 0.05).sum() >= calibration.prediction_sets(p, 0.2).sum()
    scores = np.sort(np.random.default_rng(0).uniform(size=5))
    assert conformal_quantile(scores, 0.1) == math.inf  # ceil(6 * 0.9) = 6 > 5 images
    assert conformal_quantile(scores, 0.5) == scores[2]  # ceil(6 * 0.5) = 3rd smallest
    few = Calibrator().fit(logits[:5], labels[:5])
    assert few.prediction_sets(p[:3]).all()


def test_the_out_of_scope_cut_lets_through_the_share_of_val_it_promises():
    logits, labels = sample(np.random.default_rng(4), 1000)
    for score in ("energy", "msp"):
        calibration = Calibrator(out_of_scope=score, keep=0.9).fit(logits, labels)
        flagged = calibration.out_of_scope_flags(logits)
        assert flagged.mean() == pytest.approx(0.1, abs=0.002)
        assert calibration.out_of_scope_flags(logits, keep=1.0).sum() == 0
    # energy: T * logsumexp(logits / T)
    scores = scope_scores(np.array([[0.0, math.log(3.0)]]), 1.0, "energy")
    assert scores[0] == pytest.approx(math.log(4.0))


def test_a_calibration_survives_the_checkpoint_round_trip():
    logits, labels = sample(np.random.default_rng(5), 50)
    calibration = Calibrator(alpha=0.2, out_of_scope="msp", keep=0.8).fit(logits, labels)
    again = Calibration.from_dict(calibration.to_dict())
    assert again == calibration
    assert all(type(v) in (float, str, list) for v in calibration.to_dict().values())
    assert Calibrator(temperature=False).fit(logits, labels).temperature == 1.0


@pytest.mark.parametrize(
    "arguments, named",
    [
        ({"alpha": 1.5}, "calibration.alpha=1.5 is not allowed"),
        ({"alpha": 0}, "calibration.alpha=0 is not allowed"),
        ({"alpha": "ten"}, "calibration.alpha='ten' is not allowed"),
        ({"keep": 0}, "calibration.keep=0 is not allowed"),
        ({"out_of_scope": "entropy"}, "entropy"),
    ],
)
def test_bad_settings_are_one_sentence(arguments, named):
    with pytest.raises(ConfigError, match=named):
        Calibrator(**arguments)
