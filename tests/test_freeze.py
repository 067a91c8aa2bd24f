"""Freeze policies: frozen layers stay in eval mode through Lightning's fit."""

import os
import signal

import pytest
import torch

from tests.helpers import resnet18_classifier, tiny_trainer
from tests.helpers import tiny_datamodule as datamodule


@pytest.mark.parametrize("freeze", ["all", "partial"])
def test_frozen_layers_stay_in_eval_mode_through_lightning_fit(tiny_root, tmp_path, freeze):
    import pytorch_lightning as pl

    dm = datamodule(tiny_root, tmp_path, batch_size=16)
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
