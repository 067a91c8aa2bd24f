"""Metrics of whole-set predictions equal those a trained run accumulates batch by batch."""

import pytest
import torch

from src.models.metrics import TEST_KEYS, build_metrics, score_probabilities


def test_whole_set_scores_equal_batched_torchmetrics_and_the_loss_is_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 7, generator=generator)
    labels = torch.randint(0, 7, (40,), generator=generator)
    probabilities = logits.softmax(1)
    batched = build_metrics(7, "test")
    for part, target in zip(probabilities.split(16), labels.split(16)):
        batched.update(part, target)
    expected = {key: float(value) for key, value in batched.compute().items()}
    scores = score_probabilities(probabilities.numpy(), labels.numpy(), 7, "test")
    assert set(scores) == {*TEST_KEYS, "test/loss"}
    for key, value in expected.items():
        assert scores[key] == pytest.approx(value, abs=1e-6), key
    loss = torch.nn.functional.cross_entropy(logits, labels)
    assert scores["test/loss"] == pytest.approx(float(loss), abs=1e-5)
    assert set(score_probabilities(probabilities, labels, 7, "val")) == {
        key.replace("test/", "val/") for key in scores
    }


def test_top5_is_its_own_metric_even_when_the_first_batch_is_all_right_at_top1():
    metrics = build_metrics(6, "test")
    metrics.update(torch.eye(6)[:4], torch.arange(4))  # top-1 and top-5 states equal here
    second_choice = torch.tensor([[0.5, 0.3, 0.1, 0.05, 0.03, 0.02]] * 4)
    metrics.update(second_choice, torch.tensor([1, 2, 3, 4]))  # wrong at top-1, right at top-5
    scores = metrics.compute()
    assert float(scores["test/acc"]) == pytest.approx(0.5)
    assert float(scores["test/top5_acc"]) == pytest.approx(1.0)
