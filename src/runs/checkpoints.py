"""Checkpoint files: written whole or not at all, read with one-sentence errors.

Lightning's ``TorchCheckpointIO`` serialises into memory and, for a local path, lets
fsspec write a temporary file in the system's temp folder and *move* it: across file
systems that is a copy in place, so a full disk or a kill during it leaves a truncated
``last.ckpt``. :class:`AtomicCheckpointIO` writes beside the target and renames instead.

:func:`read_checkpoint` loads only plain weights (``weights_only=True``) and turns every
way a checkpoint can be unusable (missing, empty, truncated, not a checkpoint, holding
pickled code) into one sentence, so training, evaluation, prediction and export fail alike.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from src.errors import UserFacingError
from src.runs.files import write_with

AGAIN = "use another checkpoint, or train again"


class CheckpointError(UserFacingError):
    """A checkpoint that is missing, damaged, not a checkpoint, or unsafe to load."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves with ``torch.save`` into a temporary file beside the target, then renames it."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's way
            return super().save_checkpoint(checkpoint, path, storage_options)

        def save(temporary: Path) -> None:
            # a Python file, not a path: torch then reports a full disk as OSError(ENOSPC)
            # instead of a RuntimeError from its C++ writer that names no cause
            with open(temporary, "wb") as handle:
                torch.save(checkpoint, handle)

        write_with(path, save)


def read_checkpoint(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """The checkpoint's content, loaded with ``weights_only=True``; a CheckpointError if unusable.

    ``mmap=True`` maps the tensors instead of reading them: a cheap check that the file is a
    whole, safe checkpoint before Lightning loads it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path} does not exist.")
    try:
        size = path.stat().st_size
        is_zip = zipfile.is_zipfile(path)  # torch.save's format; mmap needs it
    except OSError as err:
        raise CheckpointError(f"Cannot read {path}: {err.strerror or err}.") from err
    if size == 0:
        raise CheckpointError(
            f"{path} is empty (0 bytes), probably left by a run that was stopped while "
            f"saving; {AGAIN}."
        )
    try:
        checkpoint = torch.load(
            path, map_location=map_location, weights_only=True, mmap=mmap and is_zip
        )
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if is_zip and unsafe:
            # never suggest loading it anyway: unpickling runs whatever code it names
            raise CheckpointError(
                f"{path} was refused for safety: it holds a pickled Python object "
                f"({unsafe.group(1)}) that loading could run as code, and only plain weights "
                f"are loaded; {AGAIN}."
            ) from err
        raise _damaged(path, err) from err
    except OSError as err:
        raise CheckpointError(f"Cannot read {path}: {err.strerror or err}.") from err
    except Exception as err:  # torch's readers fail in many ways on damaged files
        raise _damaged(path, err) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path} holds a {type(checkpoint).__name__}, not a checkpoint; "
            "pass a .ckpt file written by python -m src.train."
        )
    return checkpoint


def _damaged(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a readable checkpoint (truncated, corrupt or another kind of file); "
        f"{AGAIN}."
    )
