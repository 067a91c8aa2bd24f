"""A throw-away PostgreSQL server for the tests that need a real database server.

Debian's ``postgresql`` package (``.ci/run`` installs it) gives ``initdb`` and ``pg_ctl``;
the server runs as the ``postgres`` user (initdb refuses root) in a temporary folder and
listens only on a Unix socket there. Where the package is missing the tests skip, except
in CI (``CI=true``), where they fail: CI must run them.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def server_bin() -> Path | None:
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
    )
    return Path(found).resolve().parent if found else None


def _as_postgres(*command: str | Path) -> list[str]:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return [*prefix, *map(str, command)]


def _run(*command: str | Path) -> None:
    result = subprocess.run(_as_postgres(*command), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr[-2000:]}")


@contextmanager
def postgres_server(database: str = "optuna_test") -> Iterator[str]:
    """Start a server, create ``database``; yield its SQLAlchemy URL; stop and delete it."""
    binaries = server_bin()
    if binaries is None:
        reason = "no PostgreSQL server here (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests")
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data = base / "data"
    try:
        _run(binaries / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-k {base} -c listen_addresses='' -c fsync=off -c max_connections=50"
        _run(binaries / "pg_ctl", "-D", data, "-o", options, "-l", base / "log", "-w", "start")
        _run(binaries / "createdb", "-h", base, "-U", "postgres", database)
        yield f"postgresql+psycopg2://postgres@/{database}?host={base}"
    finally:
        subprocess.run(
            _as_postgres(binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)
