"""Freeze policies: frozen layers stay in eval mode through Lightning's fit."""

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
