"""Small helpers shared by the entry points."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf


def auto_precision() -> str:
    """bf16 mixed precision on GPUs that support it, fp16 mixed on older ones, fp32 on CPU."""
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("auto_precision"):
        OmegaConf.register_new_resolver("auto_precision", auto_precision)
