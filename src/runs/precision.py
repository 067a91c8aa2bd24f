"""The numeric precision a run trains in, chosen from the hardware it finds."""

from __future__ import annotations

import torch


def auto_precision() -> str:
    """bf16 mixed precision on GPUs that support it, fp16 mixed on older ones, fp32 on CPU."""
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
