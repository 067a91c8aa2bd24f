"""Callbacks that keep a run resumable and accounted for: random-generator state, a
checkpoint on SIGTERM, and per-epoch timing."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from src.runs.files import read_json, write_json


class RngState(pl.Callback):
    """Saves the random generators with every checkpoint and restores them on resume.

    Loaders draw nothing from these generators (their workers are seeded from the data
    module's own generator, and augmented copies carry their own seeds), so the state saved
    after a batch is exactly the state the next training batch starts from. It is put back
    right before the first training batch of the resumed run, after the sanity check and
    the loader set-up, whatever they drew: the run then continues with the same dropout
    masks and draws as an uninterrupted one.
    """

    def __init__(self) -> None:
        self._pending: dict | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        state = np.random.get_state()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [state[0], torch.from_numpy(state[1].astype(np.int64)), *state[2:]],
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._pending = checkpoint.get("rng_states")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        state, self._pending = self._pending, None
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


class StopOnSigterm(pl.Callback):
    """SIGTERM (what a cluster sends before it kills a job): save ``last.ckpt`` at once.

    Lightning stops after the current batch when the process receives SIGTERM; this saves
    the run's whole state there, so ``ckpt_path=last`` continues from that very batch, and
    the entry point prints how to resume.
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.path)


class EpochTimer(pl.Callback):
    """Wall time of each training epoch, split into training, validation and the rest
    (checkpointing, early stopping), and the training images/s of this process.

    Logged as ``time/*`` (TensorBoard, CSV) and written to ``timing.json`` after every epoch,
    so a run tells how long the same schedule would take elsewhere. CUDA is synchronised
    at the epoch and validation boundaries only, which costs nothing measurable.
    """

    def __init__(self, output_dir: str, filename: str = "timing.json") -> None:
        self.path = Path(output_dir) / filename
        self.epochs: list[dict] = []
        self._reset(0.0)

    def _reset(self, start: float) -> None:
        self._start = self._val_start = self._train_until = start
        self._val_s = self._val_s_before_train_end = 0.0
        self._images = self._val_images = 0
        self._trained_since_val = False

    @staticmethod
    def _now(pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._reset(self._now(pl_module))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch[0])
        self._trained_since_val = True

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self._val_start = self._train_until = self._now(pl_module)
        self._val_s_before_train_end = self._val_s
        self._trained_since_val = False

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, *args) -> None:
        if not trainer.sanity_checking:
            self._val_images += len(batch[0])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._val_s += self._now(pl_module) - self._val_start

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        end = self._now(pl_module)
        if self._trained_since_val:  # no validation after the last training batch
            self._train_until, self._val_s_before_train_end = end, self._val_s
        train_s = self._train_until - self._start - self._val_s_before_train_end
        epoch = {
            "epoch": trainer.current_epoch,
            "epoch_s": end - self._start,
            "train_s": train_s,
            "val_s": self._val_s,
            "other_s": end - self._start - train_s - self._val_s,
            "train_images": self._images,
            "val_images": self._val_images,
            "train_images_per_s": self._images / train_s if train_s > 0 else 0.0,
        }
        self.epochs.append(epoch)
        self._write(trainer)  # after every epoch: a killed run keeps its history
        for key in ("epoch_s", "train_s", "val_s", "train_images_per_s"):
            pl_module.log(f"time/{key}", epoch[key], rank_zero_only=True)

    def on_train_start(self, trainer, pl_module) -> None:
        """A resumed run keeps the epochs before its checkpoint; a new one starts afresh.

        The clock starts here too: a run resumed mid-epoch gets no ``on_train_epoch_start``
        for that epoch, which then counts from the resume on.
        """
        self._reset(self._now(pl_module))
        resumed = trainer.ckpt_path is not None
        earlier = read_json(self.path, {}).get("epochs", []) if resumed else []
        self.epochs = [e for e in earlier if e.get("epoch", 1e9) < trainer.current_epoch]

    @rank_zero_only
    def _write(self, trainer) -> None:
        payload = {"epochs": self.epochs, "devices": trainer.num_devices}
        write_json(self.path, {**payload, "precision": str(trainer.precision)})

    def on_fit_end(self, trainer, pl_module) -> None:
        self._write(trainer)
