"""Any timm backbone with the project's head and freeze policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import resolve_model_data_config
from torch import nn

from src.errors import UserFacingError
from src.models.freeze import apply_freeze, keep_frozen_in_eval
from src.models.heads import ClassifierHead, global_pool


class WeightsUnavailableError(UserFacingError, RuntimeError):
    """Pretrained weights were asked for but cannot be had."""


def create_backbone(name: str, pretrained: bool = True, weights: str | None = None) -> nn.Module:
    """A timm model without its classifier: weights from a local file, the hub, or none."""
    try:
        if weights:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise WeightsUnavailableError(
                    f"model.net.weights={weights} does not exist; give the path of a "
                    f".safetensors, .pth or .bin file of {name}, or set model.net.weights=null."
                )
            return timm.create_model(
                name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}
            )
        return timm.create_model(name, pretrained=pretrained, num_classes=0)
    except (RuntimeError, OSError) as err:
        if isinstance(err, UserFacingError):
            raise
        if not weights and pretrained and _looks_offline(err):
            raise WeightsUnavailableError(
                f"Pretrained weights for {name} could not be downloaded from the Hugging Face "
                "hub (no internet?): download them on a machine with internet and pass "
                "model.net.weights=PATH, or train from scratch with model.net.pretrained=false."
            ) from err
        raise


def _looks_offline(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return any(
        word in text
        for word in (
            "connection",
            "offline",
            "locate the file",
            "resolve",
            "localentrynotfound",
            "name or service",
        )
    )


def unknown_backbone_hint(name: str) -> str:
    close = timm.list_models(f"*{name.split('.')[0]}*")[:5]
    return f"timm has no model {name!r}" + (f"; similar: {', '.join(close)}" if close else "")


class TimmNet(nn.Module):
    """timm backbone (``forward_features``) -> global pool -> :class:`ClassifierHead`."""

    def __init__(
        self,
        num_classes: int,
        backbone: str,
        pretrained: bool = True,
        weights: str | None = None,
        freeze: str = "all",
        unfreeze_last: int = 0,
        head: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not timm.is_model(backbone.split(".")[0]):
            raise WeightsUnavailableError(unknown_backbone_hint(backbone))
        self.backbone = create_backbone(backbone, pretrained, weights)
        self.freeze = freeze
        self.trainable_layers = apply_freeze(self.backbone, freeze, unfreeze_last)
        keep_frozen_in_eval(self.backbone, freeze)
        # num_features is the width of forward_features' output in timm (not feature_info's)
        self.head = ClassifierHead(self.backbone.num_features, num_classes, **(head or {}))
        config = resolve_model_data_config(self.backbone)
        self.data_config = {k: config[k] for k in ("mean", "std", "interpolation")}

    def train(self, mode: bool = True) -> TimmNet:
        super().train(mode)
        if mode:
            keep_frozen_in_eval(self.backbone, self.freeze)
        return self

    def keep_frozen_in_eval(self) -> None:
        keep_frozen_in_eval(self.backbone, self.freeze)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, ``(B, num_features)``: what the feature cache stores."""
        return global_pool(self.backbone.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
