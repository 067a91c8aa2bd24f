"""Files that appear whole or not at all, and readers that survive the ones that did not.

Every file the project writes goes through :func:`replacing`: the content is written to a
temporary name in the target's folder, flushed to disk, then renamed over the target
(``os.replace`` is atomic on one file system). A full disk, a killed process or a
read-only folder therefore leaves the previous file (or none), never half of a new one,
and the error names the file and the fix.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from src.errors import UserFacingError

log = logging.getLogger(__name__)
TEMP_SUFFIX = ".partial"


class OutputError(UserFacingError):
    """A file could not be written (full disk, read-only or missing folder, permissions)."""


def output_error(path: str | Path, err: OSError) -> OutputError:
    """One sentence naming the file, the cause and the fix."""
    folder = Path(path).parent
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        why = f"the disk holding {folder} is full; free some space or point the run elsewhere"
    elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = f"{folder} is not writable; choose a writable folder (e.g. hydra.run.dir=DIR)"
    else:
        why = f"{err.strerror or err}; check the folder {folder}"
    return OutputError(f"Cannot write {path}: {why}.")


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    # a unique name (not mkstemp) so the file gets the user's umask, not 0600
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
    except OSError as err:
        raise output_error(path, err) from err
    finally:
        temporary.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """``writer(temporary_path)`` writes the content; the result appears at ``path`` whole."""
    with replacing(path) as temporary:
        writer(temporary)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    return write_with(path, lambda p: p.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, payload: Any) -> Path:
    return write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(frame, path: str | Path, **kwargs: Any) -> Path:
    """A pandas frame as CSV (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    return write_with(path, lambda p: frame.to_csv(p, **kwargs))


def read_json(path: str | Path, default: Any = None) -> Any:
    """The JSON in ``path``; ``default`` with one warning if it is missing, empty or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        log.warning("Ignoring %s: it cannot be read (%s).", path, type(err).__name__)
        return default
