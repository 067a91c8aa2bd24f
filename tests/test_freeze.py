"""Freeze policies: all, partial (not batch norm) or none; frozen layers stay in eval mode
through Lightning's fit."""

import os
import signal

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from src.models.freeze import parameterised_layers
from src.models.timm_net import TimmNet
from tests.helpers import resnet18_classifier, tiny_trainer, trainable
from tests.helpers import tiny_datamodule as datamodule


def test_freeze_all_trains_only_the_head_and_keeps_the_backbone_in_eval():
    net = TimmNet(5, "resnet18", pretrained=False, freeze="all")
    assert trainable(net.backbone) == 0
    assert trainable(net) == trainable(net.head) > 0
    net.train()
    assert not any(m.training for m in net.backbone.modules())
    assert net.head.training


def test_freeze_partial_unfreezes_the_last_layers_but_not_batchnorm():
    net = TimmNet(5, "resnet18", pretrained=False, freeze="partial", unfreeze_last=3)
    layers = [m for m in parameterised_layers(net.backbone) if not isinstance(m, _BatchNorm)]
    assert net.trainable_layers == layers[-3:]
    expected = sum(p.numel() for m in layers[-3:] for p in m.parameters(recurse=False))
    assert trainable(net.backbone) == expected
    net.train()
    batchnorms = [m for m in net.backbone.modules() if isinstance(m, _BatchNorm)]
    assert batchnorms and all(not m.training and not m.weight.requires_grad for m in batchnorms)
    assert net.trainable_layers[-1].training


def test_freeze_none_trains_everything():
    net = TimmNet(5, "resnet18", pretrained=False, freeze="none")
    assert trainable(net) == sum(p.numel() for p in net.parameters())
    net.train()
    assert all(m.training for m in net.backbone.modules())


@pytest.mark.parametrize("freeze", ["all", "partial"])
def test_frozen_layers_stay_in_eval_mode_through_lightning_fit(tiny_root, tmp_path, freeze):
    import pytorch_lightning as pl

    dm = datamodule(tiny_root, tmp_path, batch_size=16)
    dm.setup("fit")
    model = resnet18_classifier(dm.class_names, freeze=freeze, unfreeze_last=2)
    before = {k: v.clone() for k, v in model.net.backbone.state_dict().items()}
    frozen = [
        m
        for m in model.net.backbone.modules()
        if freeze == "all" or isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]

    class Spy(pl.Callback):
        modes: list[bool] = []

        def on_train_batch_end(self, trainer, pl_module, *args):
            self.modes.append(any(m.training for m in frozen))

    trainer = tiny_trainer(max_epochs=2, callbacks=[Spy()])
    trainer.fit(model, datamodule=dm)
    assert Spy.modes and not any(Spy.modes)
    after = model.net.backbone.state_dict()
    running = [k for k in before if "running_" in k or "num_batches" in k]
    assert running and all(torch.equal(before[k], after[k]) for k in running)  # BN stats kept


def test_frozen_layers_stay_in_eval_mode_after_a_resume_mid_epoch(tiny_root, tmp_path):
    """A run stopped by SIGTERM mid-epoch resumes without ``on_train_epoch_start``."""
    import pytorch_lightning as pl
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from src.runs.callbacks import StopOnSigterm

    dm = datamodule(tiny_root, tmp_path, batch_size=16)
    dm.setup("fit")
    model = resnet18_classifier(dm.class_names, freeze="all")
    stop = StopOnSigterm(str(tmp_path / "checkpoints"))

    class Sigterm(pl.Callback):  # the signal a cluster sends, after the second batch
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SIGTERMException):
        tiny_trainer(limit_train_batches=4, callbacks=[stop, Sigterm()]).fit(model, datamodule=dm)
    frozen = list(model.net.backbone.modules())

    class Spy(pl.Callback):
        modes: list[bool] = []

        def on_train_batch_end(self, trainer, pl_module, *args):
            self.modes.append(any(m.training for m in frozen))

    # no sanity check: its return to training would put the frozen layers back in eval
    resumed = tiny_trainer(limit_train_batches=4, num_sanity_val_steps=0, callbacks=[Spy()])
    resumed.fit(model, datamodule=dm, ckpt_path=str(stop.path), weights_only=True)
    assert len(Spy.modes) == 2 and not any(Spy.modes)  # the two batches left, frozen in eval
