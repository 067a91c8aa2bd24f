"""The LightningModule: any backbone network, the loss, metrics and optimisation."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from src.data.transforms import UNIT_RANGE
from src.evaluation.calibration import CALIBRATION_KEY, Calibration
from src.models.hierarchy import HierarchyLoss
from src.models.metrics import MONITOR, build_metrics
from src.models.model_folder import read_model_folder
from src.models.optim import build_optimizer, build_scheduler, check_optimizer
from src.runs.checkpoints import CheckpointError, read_checkpoint


def _plain(value: Any) -> Any:
    """Hydra configs to plain containers, so checkpoints load with ``weights_only=True``."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


class SpeciesClassifier(pl.LightningModule):
    """Classifies images into ``class_names``; everything needed to rebuild it is a hparam.

    ``net`` is the network's config: ``_target_``, the import path of an ``nn.Module`` that
    takes ``num_classes``, and its other arguments (``conf/model/*.yaml``'s ``net:`` node). The
    network is built here, not passed in, so a checkpoint alone can recreate the model.
    ``optimizer`` and ``scheduler`` are chosen by ``name`` (see :mod:`src.models.optim`).
    """

    def __init__(
        self,
        net: dict[str, Any],
        class_names: list[str],
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        label_smoothing: float = 0.0,
        class_weights: list[float] | None = None,
        monitor: str = MONITOR,
        backbone_lr_mult: float | None = None,
        channels_last: bool = False,
        compile: bool = False,
        taxonomy: dict[str, list[str]] | None = None,
        hierarchy_loss_weight: float = 0.0,
    ) -> None:
        super().__init__()
        net, optimizer, scheduler = _plain(net), _plain(optimizer), _plain(scheduler)
        if not isinstance(net, dict) or "_target_" not in net:
            raise TypeError(
                f"net must be the network's config, a dict with a _target_ (e.g. "
                f"{{'_target_': 'src.models.timm_net.TimmNet', 'backbone': ...}}), not {net!r}"
            )
        check_optimizer(optimizer)
        if class_weights is not None:
            class_weights = [float(w) for w in class_weights]
        taxonomy = {
            rank: list(map(str, groups)) for rank, groups in (_plain(taxonomy) or {}).items()
        }
        self.save_hyperparameters(
            {
                "net": net,
                "class_names": list(class_names),
                "optimizer": optimizer,
                "scheduler": scheduler,
                "label_smoothing": label_smoothing,
                "class_weights": class_weights,
                "monitor": monitor,
                "backbone_lr_mult": backbone_lr_mult,
                "channels_last": channels_last,
                "compile": compile,
                "taxonomy": taxonomy,
                "hierarchy_loss_weight": float(hierarchy_loss_weight),
            }
        )
        self.net: nn.Module = hydra.utils.instantiate({**net, "num_classes": len(class_names)})
        # what the network needs beyond the run's config to be rebuilt from the checkpoint
        # alone (an open_clip architecture that came from the hub or a config folder)
        extra = getattr(self.net, "checkpoint_args", None)
        if extra:
            self.hparams["net"] = {**net, **extra}
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # kept out of the module tree so checkpoints hold the plain network's keys
        self._compiled = [torch.compile(self.net)] if compile else []
        weights = torch.tensor(class_weights) if class_weights is not None else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)
        self.hierarchy = HierarchyLoss(taxonomy, class_names, hierarchy_loss_weight)
        self.calibration: Calibration | None = None  # fitted on val after training
        self.inputs_are_features = False
        self._reset_train_sums()
        self.val_metrics = build_metrics(len(class_names), "val")
        self.test_metrics = build_metrics(len(class_names), "test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The run's resolved Hydra config travels with the weights (for src.evaluate)."""
        if getattr(self, "run_config", None) is not None:
            checkpoint["run_config"] = self.run_config
        if self.calibration is not None:
            checkpoint[CALIBRATION_KEY] = self.calibration.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.calibration = calibration_of(checkpoint)

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    @property
    def data_config(self) -> dict[str, Any]:
        """mean/std/interpolation the network expects (timm's data config for backbones)."""
        return dict(getattr(self.net, "data_config", UNIT_RANGE))

    def check_image_size(self, image_size: int) -> None:
        """Networks built for one input size (open_clip towers) refuse another in one sentence."""
        if hasattr(self.net, "check_image_size"):
            self.net.check_image_size(image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inputs_are_features:  # trained from cached backbone features
            return self.net.head(x)
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return (self._compiled[0] if self._compiled else self.net)(x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(logits.float(), y)
        if self.hierarchy.weight:  # skipped at 0: the loss is then exactly the plain one
            loss = loss + self.hierarchy(logits.float(), y)
        return loss

    # Frozen backbone layers must stay in inference mode whenever training runs. Lightning
    # puts the model in train mode at the start of fit and, after validation, restores the
    # per-module flags without calling .train(); so the flags are set again at these two
    # points (not every batch: walking ~400 modules per step costs milliseconds on a GPU).
    def on_train_epoch_start(self) -> None:
        self._keep_frozen_in_eval()
        self._reset_train_sums()

    def _reset_train_sums(self) -> None:
        # also in __init__: a run resumed mid-epoch starts without on_train_epoch_start
        self._train_sums: torch.Tensor | None = None  # summed loss and correct answers
        self._train_seen = 0

    def on_validation_model_train(self) -> None:
        super().on_validation_model_train()
        self._keep_frozen_in_eval()

    def _keep_frozen_in_eval(self) -> None:
        if hasattr(self.net, "keep_frozen_in_eval"):
            self.net.keep_frozen_in_eval()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y)
        if hasattr(self.net, "regularization"):
            loss = loss + self.net.regularization()
        # Nothing here may wait for the GPU, and self.log is kept off the step: each call
        # costs Lightning about 0.4 ms of Python (it copies its result objects), as much as a
        # small frozen backbone's whole step on a GPU. So the epoch means are summed on the
        # device and logged once, at the epoch's end, and the step loss only at the steps
        # the loggers write (log_every_n_steps).
        with torch.no_grad():
            correct = (logits.argmax(1) == y).sum()
            sums = torch.stack((loss.detach().float() * len(y), correct.float()))
        self._train_sums = sums if self._train_sums is None else self._train_sums + sums
        self._train_seen += len(y)
        if self._loggers_write_this_step():
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=len(y))
        return loss

    def _loggers_write_this_step(self) -> bool:
        # Lightning's own test (a private attribute: when it is gone, log every step)
        connector = getattr(self._trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def on_train_epoch_end(self) -> None:
        """The epoch's mean training loss and accuracy, over every process's batches."""
        if self._train_sums is None:
            return
        seen = self._train_sums.new_tensor([float(self._train_seen)])
        loss_sum, correct, count = self.trainer.strategy.reduce(
            torch.cat((self._train_sums, seen)), reduce_op="sum"
        )
        self.log("train/loss_epoch", loss_sum / count, prog_bar=True)
        self.log("train/acc", correct / count)
        self._reset_train_sums()

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val/loss", self._loss(logits, y), on_epoch=True, prog_bar=True, sync_dist=True)
        self.val_metrics.update(logits.float().softmax(1), y)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=False)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self._test_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def test_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("test/loss", self._loss(logits, y), on_epoch=True, sync_dist=True)
        self.test_metrics.update(logits.float().softmax(1), y)
        self._test_outputs.append((logits.float().cpu(), y.cpu()))

    def test_outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(N, classes)`` and labels ``(N,)`` of the last test, in loader order."""
        outputs = getattr(self, "_test_outputs", [])
        if not outputs:
            return np.zeros((0, len(self.class_names))), np.zeros(0, dtype=np.int64)
        return (
            torch.cat([p for p, _ in outputs]).numpy(),
            torch.cat([y for _, y in outputs]).numpy(),
        )

    def _gather_test_outputs(self) -> None:
        """Under DDP, every process's predictions, so rank 0's reports cover the test set."""
        if self.trainer.world_size <= 1 or not self._test_outputs:
            return
        logits = torch.cat([p for p, _ in self._test_outputs]).to(self.device)
        labels = torch.cat([y for _, y in self._test_outputs]).to(self.device)
        gathered_p = self.all_gather(logits).reshape(-1, logits.shape[1])
        gathered_y = self.all_gather(labels).reshape(-1)
        self._test_outputs = [(gathered_p.cpu(), gathered_y.cpu())]

    def on_test_epoch_end(self) -> None:
        self._gather_test_outputs()
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """Trainable parameters; the backbone's at ``lr * backbone_lr_mult`` when that is set."""
        mult = self.hparams.backbone_lr_mult
        backbone = getattr(self.net, "backbone", None)
        if mult is None or backbone is None:
            return [{"params": [p for p in self.parameters() if p.requires_grad]}]
        in_backbone = {id(p) for p in backbone.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in in_backbone]
        groups = [{"params": rest}]
        unfrozen = [p for p in backbone.parameters() if p.requires_grad]
        if unfrozen:
            groups.append({"params": unfrozen, "lr": lr * mult})
        return groups

    def configure_optimizers(self):
        options = dict(self.hparams.optimizer or {"name": "adam", "lr": 1e-3})
        optimizer = build_optimizer(self.parameter_groups(options.get("lr", 1e-3)), **options)
        schedule = dict(self.hparams.scheduler or {"name": "none"})
        schedule.setdefault("monitor", self.hparams.monitor)
        trainer = self._trainer  # None outside fit (e.g. when inspected in tests)
        max_epochs = trainer.max_epochs if trainer is not None and trainer.max_epochs else 100
        scheduler = build_scheduler(optimizer, max_epochs=max_epochs, **schedule)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def calibration_of(checkpoint: dict[str, Any]) -> Calibration | None:
    """The calibration a checkpoint holds (None for one written before calibration existed)."""
    values = checkpoint.get(CALIBRATION_KEY)
    return None if values is None else Calibration.from_dict(values)


def _current_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``hyper_parameters`` as :class:`SpeciesClassifier` takes them now, with
    the network's pretrained weights switched off.

    Checkpoints written before the model config was nested (up to commit d0a44a8) hold the
    network's import path as ``architecture`` and its arguments (``backbone``, ``pretrained``,
    ``weights``, ``freeze``, ``unfreeze_last``, ``head``; the baseline's ``channels``,
    ``hidden``, ``dropout``, ``kernel_l2``) on the top level, beside the LightningModule's
    own; they become ``net: {_target_: <architecture>, <those arguments>}``, so models trained
    then still load. ``pretrained``/``weights`` are turned off in either layout: the
    checkpoint holds the trained weights, and loading it must neither download nor need the
    weights file the run started from.
    """
    hparams = dict(hparams)
    if "architecture" in hparams:  # the old, flat layout
        own = set(inspect.signature(SpeciesClassifier.__init__).parameters) - {"self", "net"}
        net = {"_target_": hparams.pop("architecture")}
        net.update({key: hparams.pop(key) for key in list(hparams) if key not in own})
        hparams["net"] = net
    net = dict(hparams["net"])
    if "pretrained" in net or "weights" in net:
        net.update(pretrained=False, weights=None)
    return {**hparams, "net": net}


NETWORK_PACKAGE = "src.models."  # the only networks a checkpoint or model folder may build


def check_network_target(path: str | Path, net: dict[str, Any]) -> None:
    """A checkpoint names the class its network is built from; only this package's networks
    are built, so a shared file cannot make loading run code of its choosing."""
    target = str(net.get("_target_", ""))
    if not target.startswith(NETWORK_PACKAGE):
        raise CheckpointError(
            f"{path} asks to build its network with {target!r}, which is not one of this "
            f"project's networks ({NETWORK_PACKAGE}...); it was refused for safety."
        )


def load_classifier(path: str | Path, map_location: str = "cpu") -> SpeciesClassifier:
    """Rebuild a trained classifier from its checkpoint (or a folder written by ``python -m
    src.export format=hf``) alone, without downloading weights.

    Also attaches what the checkpoint says about the data: ``run_config`` (the training
    run's resolved config) and ``datamodule_state`` (image size, variant, class phyla).
    """
    if Path(path).is_dir():  # python -m src.export format=hf
        checkpoint = read_model_folder(path)
    else:
        checkpoint = read_checkpoint(path, map_location)
    if "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a checkpoint of this project's classifier (no hyper_parameters "
            "or state_dict); pass a .ckpt file written by python -m src.train."
        )
    hparams = _current_hparams(checkpoint["hyper_parameters"])
    check_network_target(path, hparams["net"])
    model = SpeciesClassifier(**hparams)
    model.load_state_dict(checkpoint["state_dict"])
    model.run_config = checkpoint.get("run_config")
    model.calibration = calibration_of(checkpoint)
    model.datamodule_state = next(
        (v for k, v in checkpoint.items() if k.endswith("DataModule")), {}
    )
    return model.eval()
