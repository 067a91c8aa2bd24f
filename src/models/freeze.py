"""Freeze policies for pretrained backbones: all, partial (last N layers) or none.

"Layers" are modules that own parameters directly, in definition order, as Keras counts
them. BatchNorm layers are never unfrozen by ``partial`` and stay in eval mode, as in
the original (unfreezing them destroys the pretrained statistics on small batches).
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from src.errors import check_choice

FREEZE_POLICIES = ("all", "partial", "none")


def parameterised_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if any(True for _ in m.parameters(recurse=False))]


def is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, _BatchNorm)


def apply_freeze(
    backbone: nn.Module, policy: str = "all", unfreeze_last: int = 0
) -> list[nn.Module]:
    """Set ``requires_grad`` on the backbone; returns the layers left trainable."""
    check_choice("model.net.freeze", policy, FREEZE_POLICIES)
    layers = [m for m in parameterised_layers(backbone) if not is_batchnorm(m)]
    if policy == "none":
        backbone.requires_grad_(True)
        return layers
    backbone.requires_grad_(False)
    if policy == "all" or unfreeze_last <= 0:
        return []
    trainable = layers[-unfreeze_last:]
    for layer in trainable:
        for parameter in layer.parameters(recurse=False):
            parameter.requires_grad_(True)
    return trainable


def keep_frozen_in_eval(backbone: nn.Module, policy: str) -> None:
    """After ``.train()``: a fully frozen backbone runs in inference mode, frozen BatchNorm too."""
    if policy == "all":
        backbone.eval()
    elif policy == "partial":
        for module in backbone.modules():
            if is_batchnorm(module):
                module.eval()
