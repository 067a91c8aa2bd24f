"""Answers at the rank the prediction set supports (src/evaluation/answers.py)."""

import numpy as np
import pytest

from src.evaluation.answers import UNKNOWN, answer_of, answers, trust_metric_names, trust_metrics
from src.evaluation.calibration import Calibration, expected_calibration_error, softmax

CLASSES = ["apidae", "formicidae", "ulidae", "acroporidae", "hominidae"]
TAXONOMY = {  # nearest rank first
    "order": ["hymenoptera", "hymenoptera", "diptera", "scleractinia", "primates"],
    "phylum": ["arthropoda", "arthropoda", "arthropoda", "cnidaria", "chordata"],
}


@pytest.mark.parametrize(
    "members, expected",
    [
        ([3], ("acroporidae", "family")),
        ([0, 1], ("hymenoptera", "order")),  # one order: the order, before the phylum
        ([1, 2, 0], ("arthropoda", "phylum")),  # two orders of one phylum
        ([0, 3], (UNKNOWN, "")),  # two phyla
        ([], (UNKNOWN, "")),  # nothing plausible
    ],
)
def test_the_answer_climbs_to_the_first_rank_the_set_shares(members, expected):
    assert answer_of(members, CLASSES, TAXONOMY, "family") == expected


def test_a_flagged_image_is_unknown_and_sets_list_the_most_probable_first():
    p = np.array([[0.1, 0.6, 0.3, 0.0, 0.0], [0.1, 0.6, 0.3, 0.0, 0.0]])
    sets = np.array([[True, True, True, False, False]] * 2)
    table = answers(p, sets, CLASSES, TAXONOMY, "family", np.array([False, True]))
    assert list(table["answer"]) == ["arthropoda", UNKNOWN]
    assert table["set"][0] == "formicidae; ulidae; apidae" and list(table["set_size"]) == [3, 3]


def test_trust_metrics_equal_a_hand_computation():
    temperature = 2.0
    # four images; with the threshold q = 0.7 a class is in the set when p >= 0.3
    probabilities = np.array(
        [
            [0.90, 0.04, 0.02, 0.02, 0.02],  # {apidae}: family, right
            [0.45, 0.40, 0.05, 0.05, 0.05],  # {apidae, formicidae}: hymenoptera, right
            [0.35, 0.05, 0.05, 0.50, 0.05],  # {acroporidae, apidae}: unknown
            [0.05, 0.05, 0.10, 0.10, 0.70],  # {hominidae}: family, wrong (truth ulidae)
        ]
    )
    labels = np.array([0, 1, 3, 2])
    logits = np.log(probabilities) * temperature  # softmax(logits / T) gives them back
    calibration = Calibration(temperature, 0.5, (0.1, 0.7, 0.9), "energy", 0.95, (0.0,))
    assert calibration.set_threshold() == 0.7  # ceil(4 * 0.5) = 2nd smallest
    metrics = trust_metrics(logits, labels, calibration, CLASSES, TAXONOMY, "family")
    assert set(metrics) == {f"test/{name}" for name in trust_metric_names("family")}
    assert metrics["test/set_coverage"] == pytest.approx(3 / 4)
    assert metrics["test/set_size"] == pytest.approx((1 + 2 + 2 + 1) / 4)
    assert metrics["test/answered_family"] == pytest.approx(2 / 4)
    assert metrics["test/answered_higher"] == pytest.approx(1 / 4)
    assert metrics["test/answered_unknown"] == pytest.approx(1 / 4)
    assert metrics["test/answer_acc"] == pytest.approx(2 / 3)
    assert metrics["test/temperature"] == temperature
    expected_after = expected_calibration_error(probabilities, labels)
    assert metrics["test/ece"] == pytest.approx(expected_after)
    expected_before = expected_calibration_error(softmax(logits), labels)
    assert metrics["test/ece_uncalibrated"] == pytest.approx(expected_before)
