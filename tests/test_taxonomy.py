"""Taxonomy-aware metrics against numbers worked out by hand."""

import numpy as np
import pandas as pd
import pytest
import torch
from torchmetrics.classification import MulticlassF1Score

from src.evaluation.taxonomy import macro_f1, taxonomy_metrics

FAMILIES = ["fa", "fb", "fc", "fd"]  # fa, fb in phylum P1; fc, fd in P2
# argmax: fa, fb, fc, fa, fd, fb -> mistakes in rows 2 (fa->fb, same phylum), 3, 4 and 6
PROBABILITIES = np.array(
    [
        [0.60, 0.20, 0.10, 0.10],  # fa: right; phylum P1 0.8: right
        [0.05, 0.35, 0.30, 0.30],  # fa: fb; phylum P2 0.6: wrong
        [0.10, 0.25, 0.40, 0.25],  # fb: fc; phylum P2 0.65: wrong
        [0.40, 0.00, 0.30, 0.30],  # fc: fa; phylum P2 0.6: right (the sum beats the argmax)
        [0.10, 0.10, 0.30, 0.50],  # fd: right; phylum P2: right
        [0.30, 0.36, 0.00, 0.34],  # fd: fb; phylum P1 0.66: wrong
    ]
)
LABELS = np.array([0, 0, 1, 2, 3, 3])


def family_index(**extra) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kingdom": "Animalia",
            "phylum": ["P1", "P1", "P2", "P2", "P1"],
            "family": ["fa", "fb", "fc", "fd", "fa"],
            **extra,
        }
    )


def test_family_target_matches_a_hand_computation():
    metrics = taxonomy_metrics(PROBABILITIES, LABELS, FAMILIES, family_index(), "family")
    # phylum true P1 P1 P1 P2 P2 P2, predicted P1 P2 P2 P2 P2 P1: 3 of 6;
    # F1 P1 = 2*1/(2*1+1+2) = 0.4, P2 = 2*2/(2*2+2+1) = 4/7
    assert metrics == pytest.approx(
        {
            "test/phylum_acc": 0.5,
            "test/phylum_f1_macro": (0.4 + 4 / 7) / 2,
            "test/errors_within_phylum": 1 / 4,
            "test/error_distance": (1 + 2 + 2 + 2) / 4,  # 1 = same phylum, 2 = same kingdom
        }
    )


def test_order_when_the_index_has_it():
    index = family_index(order=["O1", "O1", "O2", "O3", "O1"])
    metrics = taxonomy_metrics(PROBABILITIES, LABELS, FAMILIES, index, "family", "test_full")
    # order true O1 O1 O1 O2 O3 O3, predicted O1 O1 O2 O1 O3 O1;
    # F1 O1 = 4/7, O2 = 0, O3 = 2/3
    assert metrics == pytest.approx(
        {
            "test_full/order_acc": 0.5,
            "test_full/order_f1_macro": (4 / 7 + 0 + 2 / 3) / 3,
            "test_full/phylum_acc": 0.5,
            "test_full/phylum_f1_macro": (0.4 + 4 / 7) / 2,
            "test_full/errors_within_phylum": 1 / 4,
            "test_full/errors_within_order": 1 / 4,
            "test_full/error_distance": (1 + 3 + 3 + 3) / 4,
        }
    )


def test_species_target_climbs_family_then_phylum():
    index = pd.DataFrame(
        {
            "eol_page_id": [11, 12, 13, 14],  # the species, as the index has no species column
            "kingdom": "Animalia",
            "phylum": ["P1", "P1", "P1", "P2"],
            "family": ["fa", "fa", "fb", "fc"],
        }
    )
    probabilities = np.full((4, 4), 0.1)
    predicted = [1, 0, 0, 1]
    probabilities[range(4), predicted] = 0.7
    labels = np.array([0, 2, 3, 1])  # 11->12 same family, 13->11 same phylum, 14->11 apart
    metrics = taxonomy_metrics(probabilities, labels, ["11", "12", "13", "14"], index, "species")
    # family true fa fb fc fa, predicted fa fa fa fa: F1 fa = 4/6, fb = fc = 0
    # phylum true P1 P1 P2 P1, predicted P1 x 4: F1 P1 = 6/7, P2 = 0
    assert metrics == pytest.approx(
        {
            "test/family_acc": 0.5,
            "test/family_f1_macro": (4 / 6) / 3,
            "test/phylum_acc": 0.75,
            "test/phylum_f1_macro": (6 / 7) / 2,
            "test/errors_within_phylum": 2 / 3,
            "test/error_distance": (1 + 2 + 3) / 3,
        }
    )


def test_phylum_target_has_nothing_above_it():
    index = family_index()
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert taxonomy_metrics(probabilities, [0, 1, 1], ["P1", "P2"], index, "phylum") == {}
    two_kingdoms = index.assign(kingdom=["Animalia", "Animalia", "Plantae", "Plantae", "Animalia"])
    metrics = taxonomy_metrics(probabilities, [0, 1, 1], ["P1", "P2"], two_kingdoms, "phylum")
    assert metrics == pytest.approx(
        {"test/kingdom_acc": 2 / 3, "test/kingdom_f1_macro": 2 / 3, "test/error_distance": 2.0}
    )


def test_no_mistakes_and_no_images():
    perfect = taxonomy_metrics(np.eye(4), [0, 1, 2, 3], FAMILIES, family_index(), "family")
    assert perfect["test/phylum_acc"] == 1.0 and np.isnan(perfect["test/error_distance"])
    empty = taxonomy_metrics(np.zeros((0, 4)), [], FAMILIES, family_index(), "family")
    assert set(empty) == set(perfect) and all(np.isnan(v) for v in empty.values())


def test_macro_f1_is_torchmetrics_macro_f1():
    rng = np.random.default_rng(0)
    true, predicted = rng.integers(0, 5, 40), rng.integers(0, 4, 40)  # group 4 never predicted
    expected = MulticlassF1Score(6, average="macro")(torch.tensor(predicted), torch.tensor(true))
    assert macro_f1(true, predicted, 6) == pytest.approx(float(expected))
