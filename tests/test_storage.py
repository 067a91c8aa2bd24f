"""Study storages: dead workers' trials failed and retried once, locks that serialise asking."""

import socket
import subprocess
import threading
import time

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from src.errors import ConfigError
from src.sweeps import storage as stores

SPACE = {"lr": CategoricalDistribution([0.1, 0.01])}


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def new_study(url: str, **heartbeat) -> optuna.Study:
    return optuna.create_study(
        study_name="s", storage=stores.make_storage(url, **heartbeat), load_if_exists=True
    )


def claimed_by(study: optuna.Study, worker: str, **attrs) -> optuna.trial.Trial:
    trial = study.ask(SPACE)
    study._storage.set_trial_system_attr(trial._trial_id, stores.WORKER_ATTR, worker)
    for key, value in attrs.items():
        study._storage.set_trial_system_attr(trial._trial_id, key, value)
    return trial


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_trial_of_a_dead_process_is_retried_once_with_its_parameters(tmp_path):
    study = new_study(f"sqlite:///{tmp_path}/study.db")
    lost = claimed_by(study, f"{socket.gethostname()}:{dead_pid()}")
    assert stores.reap_dead_trials(study, grace_period=3600) == [lost.number]
    assert states(study) == ["FAIL", "WAITING"]
    assert stores.counted(study.get_trials()) == 1  # the retry replaces the lost trial
    retry = claimed_by(study, f"{socket.gethostname()}:{dead_pid()}")
    assert retry.params == lost.params
    stores.reap_dead_trials(study, grace_period=3600)
    assert states(study) == ["FAIL", "FAIL"]  # retried once, then it counts as failed
    assert stores.counted(study.get_trials()) == 1


def test_live_and_foreign_workers_are_left_alone(tmp_path):
    study = new_study(f"sqlite:///{tmp_path}/study.db")
    claimed_by(study, stores.this_worker())
    claimed_by(study, "another-host:1")
    assert stores.reap_dead_trials(study, grace_period=3600) == []
    assert states(study) == ["RUNNING", "RUNNING"]


def test_journal_trial_without_heartbeat_is_failed_after_the_grace_period(tmp_path):
    study = new_study(f"journal:///{tmp_path}/study.log")
    silent = claimed_by(study, "another-host:1", heartbeat=time.time() - 100)
    beating = claimed_by(study, "another-host:2", heartbeat=time.time())
    assert stores.reap_dead_trials(study, grace_period=30) == [silent.number]
    retry = study.ask(SPACE)
    assert retry.params == silent.params
    assert states(study)[beating.number] == "RUNNING"


def test_journal_heartbeat_keeps_a_trial_alive(tmp_path):
    study = new_study(f"journal:///{tmp_path}/study.log")
    trial = study.ask(SPACE)
    stores.claim(study, trial)
    study._storage.set_trial_system_attr(trial._trial_id, stores.HEARTBEAT_ATTR, 0.0)
    with stores.heartbeat(study, trial, interval=0.2):
        time.sleep(1.0)
    assert stores.reap_dead_trials(study, grace_period=30) == []


def test_rdb_heartbeats_fail_a_silent_trial(tmp_path):
    study = new_study(f"sqlite:///{tmp_path}/study.db", heartbeat_interval=1, grace_period=2)
    trial = claimed_by(study, "another-host:1")
    with stores.heartbeat(study, trial, interval=1):
        time.sleep(0.5)
    time.sleep(3)  # the worker "died": no beat for longer than the grace period
    stores.reap_dead_trials(study, grace_period=2)
    assert states(study) == ["FAIL", "WAITING"]


def test_unknown_storage_url_is_one_sentence():
    with pytest.raises(ConfigError, match="hparams_search.storage='redis://x' is not one of"):
        stores.check_url("redis://x")


def test_postgres_advisory_lock_serialises_workers(postgres_url):
    events: list[str] = []
    inside = threading.Event()

    def first():
        with stores.asking_lock(postgres_url, "s"):
            events.append("first in")
            inside.set()
            time.sleep(1.0)
            events.append("first out")

    def second():
        inside.wait(30)
        with stores.asking_lock(postgres_url, "s"):
            events.append("second in")

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert events == ["first in", "first out", "second in"]
    study = new_study(postgres_url, heartbeat_interval=60, grace_period=180)
    trial = claimed_by(study, "another-host:1")
    study.tell(trial, 0.5)
    assert new_study(postgres_url).best_value == 0.5
