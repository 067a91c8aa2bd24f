"""Where a study lives, who may ask it for a trial, and what happens to a dead worker's trial.

- Storage URLs: ``sqlite:///file.db`` and ``postgresql://...`` go to Optuna's RDB storage with
  heartbeats (a trial whose worker stops beating for ``grace_period`` seconds becomes FAIL and
  is retried once with the same parameters, by Optuna's retry callback);
  ``journal:///file.log`` is a journal file, which has no heartbeats in Optuna, so the same
  behaviour is kept here with a ``heartbeat`` system attribute on the trial.
- Every claimed trial records its worker (host and process id): a trial whose worker process
  is gone on this very host is failed and retried at once, without waiting out the grace period.
- Asking is serialised across workers so the study never overshoots ``n_trials``: a file lock
  beside a SQLite/journal file, a PostgreSQL advisory lock on a server database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
from optuna.trial import FrozenTrial, TrialState

from src.errors import ConfigError

log = logging.getLogger(__name__)
WORKER_ATTR = "worker"
HEARTBEAT_ATTR = "heartbeat"
MAX_RETRY = 1
# heartbeats with ask/tell are what Optuna calls experimental; they are used on purpose here
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
SUPPORTED = "sqlite:///FILE.db, journal:///FILE.log or postgresql://USER:PASS@HOST/DB"


def local_file(storage: str) -> Path | None:
    """The file behind a SQLite or journal storage URL (None for server databases)."""
    for prefix in ("sqlite:///", "journal:///"):
        if storage.startswith(prefix):
            return Path(storage[len(prefix) :])
    return None


def is_journal(storage: str) -> bool:
    return storage.startswith("journal:///")


def check_url(storage: str) -> str:
    if not (local_file(storage) or storage.startswith(("postgresql", "mysql"))):
        raise ConfigError(f"hparams_search.storage={storage!r} is not one of {SUPPORTED}.")
    return storage


def make_storage(
    storage: str, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> optuna.storages.BaseStorage:
    """The Optuna storage for a URL; heartbeats and one retry where the backend has them."""
    check_url(storage)
    path = local_file(storage)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if is_journal(storage):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(
            storage,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=Retry(max_retry=MAX_RETRY)
            if heartbeat_interval
            else None,
        )
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"hparams_search.storage={storage.split(':')[0]}://... needs the database driver "
            f"{err.name}: pip install -e '.[postgres]' (psycopg2-binary)."
        ) from err


# ---- who may ask --------------------------------------------------------------------------
@contextmanager
def asking_lock(storage: str, study_name: str) -> Iterator[None]:
    """One worker at a time counts the trials and asks for a new one."""
    path = local_file(storage)
    if path is not None:
        from filelock import FileLock

        with FileLock(str(path) + ".lock"):
            yield
        return
    if storage.startswith("postgresql"):
        with _advisory_lock(storage, study_name):
            yield
        return
    log.warning("No lock for %s: several workers may overshoot n_trials.", storage.split(":")[0])
    yield


@contextmanager
def _advisory_lock(storage: str, study_name: str) -> Iterator[None]:
    """A PostgreSQL session-level advisory lock, keyed by the study name."""
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
    engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


# ---- whose trial is it ----------------------------------------------------------------------
def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(study: optuna.Study, trial: optuna.trial.Trial) -> None:
    """Record which process runs the trial (and a first heartbeat for journal storages)."""
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, this_worker())
    if isinstance(study._storage, optuna.storages.JournalStorage):
        study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())


def _process_gone(worker: str | None) -> bool:
    """True when ``worker`` ran on this host and its process no longer exists."""
    if not worker or ":" not in worker:
        return False
    host, pid = worker.rsplit(":", 1)
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def _stale(trial: FrozenTrial, journal: bool, grace_period: float) -> bool:
    if _process_gone(trial.system_attrs.get(WORKER_ATTR)):
        return True
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    return journal and beat is not None and time.time() - float(beat) > grace_period


def reap_dead_trials(study: optuna.Study, grace_period: float) -> list[int]:
    """FAIL the RUNNING trials whose worker is dead and queue one retry each; their numbers."""
    optuna.storages.fail_stale_trials(study)  # RDB heartbeats (retry by Optuna's callback)
    storage = study._storage
    journal = isinstance(storage, optuna.storages.JournalStorage)
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _stale(trial, journal, grace_period):
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        Retry(max_retry=MAX_RETRY)(study, storage.get_trial(trial._trial_id))
        reaped.append(trial.number)
    if reaped:
        log.warning("Trial(s) %s lost their worker: marked failed and queued again.", reaped)
    return reaped


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of failed trials that another trial retries (they no longer count)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def counted(trials: list[FrozenTrial]) -> int:
    """Trials that use up ``n_trials``: all but the failed ones that were queued again."""
    retried = retried_numbers(trials)
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and t.number in retried))


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.trial.Trial, interval: float) -> Iterator[None]:
    """Beat while the trial runs: Optuna's thread for RDB storages, an attribute for journals."""
    storage = study._storage
    if not isinstance(storage, optuna.storages.JournalStorage):
        from optuna.storages._heartbeat import get_heartbeat_thread

        with get_heartbeat_thread(trial._trial_id, storage):
            yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
            except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                return

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{trial.number}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
