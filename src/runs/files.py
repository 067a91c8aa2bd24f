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
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from src.errors import UserFacingError

log = logging.getLogger(__name__)
TEMP_SUFFIX = ".partial"


class OutputError(UserFacingError):
    """A file could not be written (full disk, read-only or missing folder, permissions)."""


# errors that mean "this place cannot take output", whichever code raised them
FULL = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
NOT_A_FOLDER = (errno.ENOTDIR,)


def output_error(
    path: str | Path | None, err: OSError, setting: str = "hydra.run.dir"
) -> OutputError:
    """One sentence naming the file, the cause and the fix (``setting`` moves the output)."""
    if path is None:  # e.g. a C extension that did not say which file
        target, folder = "the run's output", "its folder"
    else:
        target, folder = str(path), str(Path(path).parent)
    if err.errno in FULL:
        why = f"the disk holding {folder} is full; free some space or point the run elsewhere"
    elif err.errno in NOT_WRITABLE:
        why = f"{folder} is not writable; choose a writable folder (e.g. {setting}=DIR)"
    elif err.errno in NOT_A_FOLDER:
        why = f"part of {folder} is a file, not a folder; choose another folder"
    else:
        why = f"{err.strerror or err}; check the folder {folder}"
    return OutputError(f"Cannot write {target}: {why}.")


def output_error_behind(err: BaseException) -> OutputError | None:
    """The OutputError sentence for a full, read-only or misplaced output folder behind ``err``.

    For errors raised by code that does not write through this module (Lightning's loggers,
    Hydra, libraries), so that they too end in one sentence rather than a traceback.
    """
    for current in error_chain(err):
        if isinstance(current, OutputError):
            return current
        if not isinstance(current, OSError):
            continue
        if current.errno in (errno.EACCES, errno.EPERM):  # may as well have been a read
            return OutputError(
                f"Permission denied for {current.filename or 'a file of the run'}: give this "
                "user access to it, or choose another folder (e.g. hydra.run.dir=DIR)."
            )
        if current.errno in (*FULL, *NOT_WRITABLE, *NOT_A_FOLDER):
            return output_error(current.filename, current)
    return None


def error_chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the errors it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    # a unique name (not mkstemp) so the file gets the user's umask, not 0600; it ends in
    # the target's suffix because writers such as savefig pick the format from it
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary = path.with_name(f".{path.name}.{token}{TEMP_SUFFIX}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
        _fsync_folder(path.parent)
    except Exception as err:
        # writers in C (torch.save) may raise their own error while handling the OSError
        cause = next((e for e in error_chain(err) if isinstance(e, OSError)), None)
        if cause is None or isinstance(err, OutputError):
            raise
        raise output_error(path, cause) from err
    finally:
        # e.g. the folder became unreadable: the first error is the one to tell
        with suppress(OSError):
            temporary.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot sync a folder, which is fine."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(handle)
    finally:
        os.close(handle)


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


def read_json(path: str | Path, default: Any = None, expect: type | None = None) -> Any:
    """The JSON in ``path``; ``default`` if it is missing, with one warning if it is empty,
    broken or (with ``expect``, e.g. ``dict``) holds another kind of value."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        log.warning("Ignoring %s: it cannot be read (%s).", path, type(err).__name__)
        return default
    if expect is not None and not isinstance(value, expect):
        kind, wanted = type(value).__name__, expect.__name__
        log.warning("Ignoring %s: it holds a %s, not a %s.", path, kind, wanted)
        return default
    return value
