"""No point of a finite search space is trained twice while unexplored points remain."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from src.sweeps.distinct import DistinctSampler, exhausted, grid_size, worker_seed
from src.sweeps.study import build_sampler

SPACE = {
    "lr": CategoricalDistribution([50.0, 0.003, 0.01]),
    "dropout": FloatDistribution(0.3, 0.5, step=0.2),
}


def ask(study: optuna.Study, name: str, space=SPACE) -> optuna.trial.Trial:
    seed = worker_seed(42, len(study.trials))
    study.sampler = DistinctSampler(build_sampler({"name": name, "seed": seed}), space, seed)
    return study.ask(space)


@pytest.mark.parametrize("name", ["tpe", "random"])
def test_every_point_once_before_any_repeats(name):
    study = optuna.create_study(direction="maximize")
    points = []
    for i in range(6):
        trial = ask(study, name)
        points.append((trial.params["lr"], round(trial.params["dropout"], 6)))
        study.tell(trial, float(i % 3))
    assert len(set(points)) == 6 == grid_size(SPACE)
    seventh = ask(study, name)  # exhausted: a repeat is allowed, not an error
    assert (seventh.params["lr"], round(seventh.params["dropout"], 6)) in points


def test_running_and_pruned_points_are_taken_too():
    study = optuna.create_study()
    running = ask(study, "random")
    pruned = ask(study, "random")
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    later = [ask(study, "random").params for _ in range(4)]
    assert running.params not in later and pruned.params not in later


def test_same_study_seed_gives_the_same_sequence_alone():
    def sequence():
        study = optuna.create_study()
        return [ask(study, "tpe").params for _ in range(4)]

    assert sequence() == sequence()
    assert worker_seed(42, 0) != worker_seed(42, 1) and worker_seed(None, 3) is None


def test_continuous_spaces_are_not_enumerated():
    assert grid_size({"lr": FloatDistribution(1e-5, 1e-2, log=True)}) is None
    assert grid_size({"n": IntDistribution(0, 40, step=2)}) == 21


def test_a_space_is_exhausted_once_every_point_has_a_trial():
    study = optuna.create_study(direction="maximize")
    for i in range(6):
        assert not exhausted(SPACE, study.trials)
        trial = ask(study, "random")
        if i % 2:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert exhausted(SPACE, study.trials)  # 4 finished or pruned, 2 still running
    assert not exhausted({"lr": FloatDistribution(0.1, 1.0)}, study.trials)
