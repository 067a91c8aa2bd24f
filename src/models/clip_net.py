"""The image tower of any open_clip model (CLIP, OpenCLIP, BioCLIP, BioCLIP 2) with the
project's head and freeze policy: ``model=openclip``, ``model=bioclip``, ``model=clip``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from src.errors import ConfigError, check_choice
from src.models.clip import (
    create_clip,
    image_data_config,
    image_tower_config,
    spec_from_net,
)
from src.models.freeze import (
    FREEZE_POLICIES,
    apply_block_freeze,
    apply_freeze,
    keep_frozen_in_eval,
    keep_untrained_in_eval,
)
from src.models.heads import ClassifierHead

# what follows the transformer blocks of open_clip's VisionTransformer, in forward order
VIT_TAIL = ("attn_pool", "attn_pool_contrastive", "ln_post", "proj")


class ClipNet(nn.Module):
    """open_clip image tower -> its image embedding ``(B, D)`` -> :class:`ClassifierHead`.

    ``name``: an open_clip architecture (``ViT-B-16``, ...) or a ``hf-hub:`` model id;
    ``pretrained``: an open_clip weights tag (``openai``, ...; ``hf-hub:`` ids carry their own,
    ``False`` means no weights); ``weights``: a local open_clip checkpoint (for a ``hf-hub:`` id,
    the hub folder's weights file with its ``open_clip_config.json`` beside it); ``config_dir``:
    a folder of extra open_clip architecture configs. Only the image tower is kept (the text
    tower is dropped after loading). ``forward_features`` is the tower's output: the projected
    image embedding CLIP compares with text, not L2-normalised (the head learns its own scale).

    ``freeze``: ``all`` (the tower is frozen and runs in inference mode), ``partial``, ``none``.
    For ViT towers ``partial`` trains the last ``unfreeze_last`` transformer blocks
    (``visual.transformer.resblocks``) and what follows them (final LayerNorm, attention
    pooling, projection); the patch embedding, position embeddings and earlier blocks stay
    frozen and in inference mode (see :func:`~src.models.freeze.apply_block_freeze`). Other
    towers (timm-based, ModifiedResNet) fall back to the generic rule of
    :func:`~src.models.freeze.apply_freeze`: the last ``unfreeze_last`` layers that own
    parameters, BatchNorm frozen and in eval mode.

    The tower takes images of one size (``input_size``, e.g. 224 for ViT-B-16):
    :meth:`check_image_size` says which ``data.image_size`` to set before a run trains.

    ``open_clip_config``: not set by users; checkpoints carry it (:attr:`checkpoint_args`) so
    that the architecture is rebuilt from it without hub, config folder or weights.
    """

    def __init__(
        self,
        num_classes: int,
        name: str,
        pretrained: str | bool | None = None,
        weights: str | None = None,
        config_dir: str | None = None,
        freeze: str = "all",
        unfreeze_last: int = 0,
        head: dict[str, Any] | None = None,
        open_clip_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_choice("model.net.freeze", freeze, FREEZE_POLICIES)
        spec = spec_from_net(
            {"name": name, "pretrained": pretrained, "weights": weights, "config_dir": config_dir}
        )
        # a checkpoint's architecture: built without hub, config folder or weights
        spec = replace(spec, open_clip_config=open_clip_config)
        model = create_clip(spec)
        self.name = name
        self.open_clip_config = image_tower_config(spec, model)
        config = image_data_config(model)
        self.data_config = {k: config[k] for k in ("mean", "std", "interpolation")}
        self.input_size = _pair(model.visual.preprocess_cfg.get("size", config["image_size"]))
        self.backbone = model.visual  # the text tower goes with ``model``
        del model
        self.freeze = freeze
        self.trainable_parts = self._apply_freeze(freeze, unfreeze_last)
        self.keep_frozen_in_eval()
        width = getattr(self.backbone, "output_dim", None) or self._probe_width()
        self.head = ClassifierHead(width, num_classes, **(head or {}))

    @property
    def checkpoint_args(self) -> dict[str, Any]:
        """What the checkpoint's network config needs beyond the run's to rebuild this net."""
        return {"open_clip_config": self.open_clip_config}

    def _blocks(self) -> tuple[list[nn.Module], list[nn.Module | nn.Parameter]] | None:
        """A ViT tower's transformer blocks and what follows them, or None for other towers."""
        blocks = getattr(getattr(self.backbone, "transformer", None), "resblocks", None)
        if blocks is None:
            return None
        tail = [getattr(self.backbone, key, None) for key in VIT_TAIL]
        return list(blocks), [part for part in tail if part is not None]

    def _apply_freeze(self, policy: str, unfreeze_last: int) -> list:
        vit = self._blocks()
        if vit is None:
            return apply_freeze(self.backbone, policy, unfreeze_last)
        return apply_block_freeze(self.backbone, *vit, policy, unfreeze_last)

    def _probe_width(self) -> int:
        with torch.no_grad():
            return int(self.forward_features(torch.zeros(1, 3, *self.input_size)).shape[-1])

    def train(self, mode: bool = True) -> ClipNet:
        super().train(mode)
        if mode:
            self.keep_frozen_in_eval()
        return self

    def keep_frozen_in_eval(self) -> None:
        if self.freeze == "partial" and self._blocks() is not None:
            keep_untrained_in_eval(self.backbone, self.trainable_parts)
        else:
            keep_frozen_in_eval(self.backbone, self.freeze)

    def check_image_size(self, image_size: int) -> None:
        """One sentence, before any training, when the data is not the tower's input size."""
        height, width = self.input_size
        if height != width:
            raise ConfigError(
                f"model.net.name={self.name} takes {height}x{width} images, which the square "
                f"data.image_size cannot give; choose another open_clip model."
            )
        if int(image_size) != height:
            raise ConfigError(
                f"model.net.name={self.name} takes {height}x{height} images, but "
                f"data.image_size={image_size}: set data.image_size={height}."
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The tower's image embedding, ``(B, D)``: what the feature cache stores."""
        features = self.backbone(x)
        if isinstance(features, tuple):  # towers that also return their tokens
            features = features[0]
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])
