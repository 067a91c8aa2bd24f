"""The trials' pruning callback: hopeless trials (diverged, or no better than chance) stop
on their own from ``min_resource`` epochs on; the others go to the study's pruner."""

import math
from types import SimpleNamespace

import optuna
import pytest
import torch

from src.sweeps.pruning import OptunaPruning, chance_level


def validate(callback: OptunaPruning, value: float, epoch: int = 0, classes: int = 10, **more):
    metrics = {callback.monitor: torch.tensor(value), **more}
    trainer = SimpleNamespace(
        sanity_checking=False, current_epoch=epoch, callback_metrics=metrics, should_stop=False
    )
    callback.on_validation_end(trainer, SimpleNamespace(class_names=list(range(classes))))
    return trainer


def callback(monitor="val/f1_macro", mode="max", after=1, pruner=None) -> OptunaPruning:
    study = optuna.create_study(pruner=pruner or optuna.pruners.NopPruner())
    return OptunaPruning(study.ask(), monitor, mode, after)


def test_chance_levels():
    assert chance_level("val/f1_macro", 10) == pytest.approx(0.1)
    assert chance_level("val/top5_acc", 4) == 1.0
    assert chance_level("val/auroc", 202) == 0.5
    assert chance_level("val/loss", 10) == pytest.approx(math.log(10))
    assert chance_level("val/ece", 10) is None and chance_level("val/acc", 1) is None


def test_a_diverged_trial_stops_at_the_first_rung():
    nan = callback()
    assert validate(nan, float("nan")).should_stop
    assert nan.pruned_at == 1 and "diverged" in nan.reason
    assert nan.trial.study.trials[0].intermediate_values == {}  # NaN is not reported
    exploded = callback()
    assert validate(exploded, 0.5, **{"train/loss_epoch": torch.tensor(float("inf"))}).should_stop
    assert "diverged" in exploded.reason


def test_a_trial_no_better_than_chance_stops_and_a_slow_starter_goes_on():
    far = {"val/loss": torch.tensor(7e7)}  # ln 10 = 2.30: a uniform guess's loss
    chance = callback()
    assert validate(chance, 0.05, **far).should_stop
    assert "no better than chance" in chance.reason
    assert chance.trial.study.trials[0].intermediate_values == {1: pytest.approx(0.05)}
    # below chance in F1 after one epoch, but its loss already beats a uniform guess's
    slow = callback()
    assert not validate(slow, 0.05, **{"val/loss": torch.tensor(2.2)}).should_stop
    # a high but sane learning rate: overconfident after one epoch (2.1x ln 10), not hopeless
    high = callback()
    assert not validate(high, 0.05, **{"val/loss": torch.tensor(4.87)}).should_stop
    learning = callback()
    assert not validate(learning, 0.4, **far).should_stop and not learning.pruned
    loss = callback("val/loss", "min")
    assert validate(loss, 50.0, **{"val/loss": torch.tensor(50.0)}).should_stop  # > 10 ln 10
    sane = callback("val/loss", "min")
    assert not validate(sane, 5.0, **{"val/loss": torch.tensor(5.0)}).should_stop


def test_hopeless_trials_are_judged_from_min_resource_on_or_not_at_all():
    later, far = callback(after=3), {"val/loss": torch.tensor(50.0)}
    assert not validate(later, 0.0, epoch=0, **far).should_stop
    assert validate(later, 0.0, epoch=2, **far).should_stop and later.pruned_at == 3
    never = callback(after=None)
    assert not validate(never, float("nan"), epoch=5).should_stop
