"""Optimizers and schedulers from conf/model, the backbone's smaller learning rate, and the
refusal of a negative learning rate."""

import pytest
from hydra.utils import instantiate

from tests.helpers import NAMES, TINY_DATA, build, model_config, run_module, trainable


@pytest.mark.parametrize(
    "optimizer, scheduler",
    [("sgd", "cosine"), ("rmsprop", "plateau"), ("adamw", "exponential"), ("adam", "none")],
)
def test_optimizers_and_schedulers(optimizer, scheduler):
    model = build("baseline", f"model/optimizer={optimizer}", f"model/scheduler={scheduler}")
    configured = model.configure_optimizers()
    opt = configured["optimizer"] if isinstance(configured, dict) else configured
    assert type(opt).__name__.lower() == optimizer
    if optimizer == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9
    assert isinstance(configured, dict) == (scheduler != "none")


def test_discriminative_learning_rate():
    model = instantiate(
        model_config(
            "timm",
            "model.net.backbone=resnet18",
            "model.net.freeze=partial",
            "model.net.unfreeze_last=2",
            "model.backbone_lr_mult=0.1",
        ),
        class_names=NAMES,
        _recursive_=False,
    )
    groups = model.configure_optimizers()["optimizer"].param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-4])
    assert sum(p.numel() for p in groups[1]["params"]) == trainable(model.net.backbone)


def test_train_refuses_a_negative_learning_rate_in_one_line(tmp_path):
    result = run_module(
        tmp_path,
        "src.train",
        *TINY_DATA,
        "data.image_size=32",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        "model.optimizer.lr=-1",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: model.optimizer.lr=-1 is not allowed: use a positive number" in result.stderr
