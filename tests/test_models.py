"""timm backbones, head, freeze policies, weights, and the training module."""

import pytest
import timm
import torch
from hydra.utils import instantiate
from safetensors.torch import save_file
from torch.nn.modules.batchnorm import _BatchNorm

from src.models.classifier import SpeciesClassifier
from src.models.freeze import parameterised_layers
from src.models.timm_net import TimmNet
from tests.helpers import TINY_DATA, compose_config, run_module, run_offline

NAMES = [f"c{i}" for i in range(7)]
MODELS = ["baseline", "vgg19", "resnet152v2", "convnext", "efficientnetv2_b0"]


def model_config(name: str, *overrides: str):
    extra = ["model.pretrained=false"] if name != "baseline" else []
    return compose_config("train", f"model={name}", *extra, *overrides).model


def build(name: str, *overrides: str) -> SpeciesClassifier:
    return instantiate(model_config(name, *overrides), class_names=NAMES, _recursive_=False)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_trains_a_step(name):
    torch.manual_seed(0)
    model = build(name)
    model.train()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 4])
    loss = model.loss_fn(model(x), y)
    loss.backward()
    head_grads = (
        [p.grad for p in model.net.head.parameters()]
        if name != "baseline"
        else [p.grad for p in model.net.parameters()]
    )
    assert all(g is not None and torch.isfinite(g).all() for g in head_grads)
    assert model(x).shape == (2, len(NAMES))
    assert set(model.data_config) >= {"mean", "std", "interpolation"}


def test_backbone_names_and_data_configs():
    expected = {
        "vgg19": "vgg19.tv_in1k",
        "convnext": "convnext_base.fb_in22k_ft_in1k",
        "efficientnetv2_b0": "tf_efficientnetv2_b0.in1k",
        "resnet152v2": "resnetv2_152x2_bit.goog_in21k_ft_in1k",
    }
    for config, backbone in expected.items():
        assert model_config(config).backbone == backbone
    convnext = TimmNet(3, "convnext_atto", pretrained=False)
    assert convnext.data_config["interpolation"] == "bicubic"
    assert convnext.data_config["mean"] == pytest.approx((0.485, 0.456, 0.406))


def test_any_timm_name_and_a_custom_head():
    net = TimmNet(
        5,
        "resnet18",
        pretrained=False,
        head={"hidden": [64, 32], "activation": "relu", "dropout": 0.2},
    )
    linears = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [64, 32, 5]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.head) == 2
    with pytest.raises(Exception, match="timm has no model"):
        TimmNet(5, "no_such_net", pretrained=False)


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


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


def test_local_weights_file_is_loaded(tmp_path):
    source = timm.create_model("resnet18", pretrained=False, num_classes=0)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    net = TimmNet(5, "resnet18", pretrained=True, weights=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(net.backbone.state_dict()[key], value), key
    with pytest.raises(Exception, match="does not exist"):
        TimmNet(5, "resnet18", weights=str(tmp_path / "missing.safetensors"))


def test_offline_pretrained_fails_in_one_clear_sentence():
    code = (
        "from src.models.timm_net import TimmNet\nTimmNet(5, 'resnet18.a1_in1k', pretrained=True)\n"
    )
    result = run_offline(code)
    assert result.returncode != 0
    assert (
        "WeightsUnavailableError: Pretrained weights for resnet18.a1_in1k could not be"
        in result.stderr
    )
    assert "model.weights=PATH" in result.stderr and "model.pretrained=false" in result.stderr


def test_class_weights_change_the_loss():
    torch.manual_seed(0)
    plain = build("baseline")
    weighted = build("baseline")
    weighted.load_state_dict(plain.state_dict(), strict=False)
    weighted.loss_fn.weight = torch.tensor([5.0, 1, 1, 1, 1, 1, 1])
    logits, y = torch.randn(4, 7), torch.tensor([0, 1, 2, 0])
    assert not torch.isclose(plain.loss_fn(logits, y), weighted.loss_fn(logits, y))
    model = instantiate(
        model_config("baseline"), class_names=NAMES, class_weights=[2.0] * 7, _recursive_=False
    )
    assert model.loss_fn.weight.tolist() == [2.0] * 7


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
            "model.backbone=resnet18",
            "model.freeze=partial",
            "model.unfreeze_last=2",
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
