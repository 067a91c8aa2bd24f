"""timm backbones: the configured names and data configs, any timm name with a custom head,
local weights files, and the offline error for pretrained weights."""

import pytest
import timm
import torch
from safetensors.torch import save_file

from src.models.timm_net import TimmNet
from tests.helpers import model_config, offline_error


def test_backbone_names_and_data_configs():
    expected = {
        "vgg19": "vgg19.tv_in1k",
        "convnext": "convnext_base.fb_in22k_ft_in1k",
        "efficientnetv2_b0": "tf_efficientnetv2_b0.in1k",
        "resnet152v2": "resnetv2_152x2_bit.goog_in21k_ft_in1k",
    }
    for config, backbone in expected.items():
        assert model_config(config).net.backbone == backbone
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
    stderr = offline_error(code)
    assert "WeightsUnavailableError: Pretrained weights for resnet18.a1_in1k could not be" in stderr
    assert "model.net.weights=PATH" in stderr
    assert "model.net.pretrained=false" in stderr
