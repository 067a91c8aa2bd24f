"""Freeze policies for pretrained backbones: all, partial (last N layers) or none.

"Layers" are modules that own parameters directly, in definition order, as Keras counts
them. BatchNorm layers are never unfrozen by ``partial`` and stay in eval mode, as in
the original (unfreezing them destroys the pretrained statistics on small batches).

Transformer towers count blocks instead (:func:`apply_block_freeze`): ``partial`` trains the
last N blocks and what follows them (final norm, pooling, projection); everything before
them stays frozen and in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def apply_block_freeze(
    backbone: nn.Module,
    blocks: Sequence[nn.Module],
    tail: Sequence[nn.Module | nn.Parameter],
    policy: str = "all",
    unfreeze_last: int = 0,
) -> list[nn.Module | nn.Parameter]:
    """Set ``requires_grad`` on a transformer tower; returns the parts left trainable.

    ``blocks``: the tower's transformer blocks, in order; ``tail``: the modules and
    parameters after them (final norm, pooling, projection). ``partial`` trains the last
    ``unfreeze_last`` blocks and the tail (with 0, the tail only; with as many as there are
    blocks or more, every block); the patch embedding, position embeddings and everything
    else before the blocks stay frozen.
    """
    check_choice("model.net.freeze", policy, FREEZE_POLICIES)
    if policy == "none":
        backbone.requires_grad_(True)
        return [backbone]
    backbone.requires_grad_(False)
    if policy == "all":
        return []
    first = max(len(blocks) - max(int(unfreeze_last), 0), 0)
    trainable = [*blocks[first:], *tail]
    for part in trainable:
        part.requires_grad_(True)
    return trainable


def keep_untrained_in_eval(backbone: nn.Module, trained: Sequence[nn.Module | nn.Parameter]):
    """Modules that neither are, hold nor lie inside a trained part run in inference mode
    (the frozen blocks and the stem before them; dropout inside a trained block trains)."""
    trained_ids = {id(part) for part in trained if isinstance(part, nn.Module)}

    def walk(module: nn.Module) -> None:
        for child in module.children():
            if id(child) in trained_ids:
                continue
            if any(id(inner) in trained_ids for inner in child.modules()):
                walk(child)
            else:
                child.eval()

    walk(backbone)
