"""Loading an open_clip model (CLIP, OpenCLIP, BioCLIP): the one path every user of CLIP
takes (the "only animals" filter, the CLIP backbone, the zero-/few-shot baselines).

Weights come from a local file (offline machines), an open_clip tag (``openai``,
``laion2b_...``), a ``hf-hub:`` model id (which carries its own weights, e.g.
``hf-hub:imageomics/bioclip``) or nowhere (random initialisation, as the tests do).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.errors import UserFacingError

log = logging.getLogger(__name__)
QUICKGELU_TAGS = ("openai",)


class ClipUnavailableError(UserFacingError, RuntimeError):
    """The CLIP model or its weights cannot be had."""


@dataclass(frozen=True)
class ClipSpec:
    """Which open_clip model, and where its weights come from.

    ``config_dir``: a folder of extra open_clip architecture configs (JSON), registered
    before loading. ``weights_key`` names the config key of ``weights`` in error messages.
    """

    model: str = "ViT-B-16-quickgelu"
    pretrained: str | None = "openai"
    weights: str | None = None
    config_dir: str | None = None
    weights_key: str = "filter.weights"

    def identity(self) -> dict[str, str | None]:
        """What embeddings and scores depend on (a local file by name, size and mtime)."""
        weights = None
        if self.weights:
            stat = Path(self.weights).stat()
            weights = f"{Path(self.weights).name}:{stat.st_size}:{stat.st_mtime_ns}"
        return {"model": self.model, "pretrained": self.pretrained, "weights": weights}


def spec_from_net(net: Mapping[str, Any]) -> ClipSpec:
    """The :class:`ClipSpec` of a ``model.net`` config node (``conf/model/openclip.yaml``)."""
    return ClipSpec(
        model=net["name"],
        pretrained=net.get("pretrained"),
        weights=net.get("weights"),
        config_dir=net.get("config_dir"),
        weights_key="model.net.weights",
    )


def resolve_model_name(model: str, pretrained: str | None) -> str:
    """OpenAI's CLIP weights were trained with QuickGELU: use the -quickgelu architecture.

    ``ViT-B-16`` with ``openai`` weights would run the wrong activation and only warn.
    """
    import open_clip

    if pretrained in QUICKGELU_TAGS and not model.endswith("-quickgelu"):
        candidate = f"{model}-quickgelu"
        if candidate in open_clip.list_models():
            log.info("Using %s: OpenAI weights need QuickGELU.", candidate)
            return candidate
    return model


def register_configs(folder: str | Path | None) -> None:
    """Make the architectures in ``folder`` (open_clip JSON configs) loadable by name."""
    if folder:
        import open_clip

        if not Path(folder).is_dir():
            raise ClipUnavailableError(f"The open_clip config folder {folder} does not exist.")
        open_clip.add_model_config(folder)


def load_clip(spec: ClipSpec, device: str = "cpu"):
    """(model, preprocess, tokenizer) in eval mode, or one sentence saying what to do."""
    import open_clip

    register_configs(spec.config_dir)
    name = resolve_model_name(spec.model, spec.pretrained)
    pretrained = spec.weights or spec.pretrained
    if spec.weights and not Path(spec.weights).is_file():
        raise ClipUnavailableError(f"{spec.weights_key}={spec.weights} does not exist.")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device
        )
    except RuntimeError as err:
        if "Unknown model" in str(err) or "not found" in str(err).lower():
            raise ClipUnavailableError(f"open_clip has no model {name!r}: {err}") from err
        raise ClipUnavailableError(_offline_message(name, pretrained, spec.weights_key)) from err
    except OSError as err:
        raise ClipUnavailableError(_offline_message(name, pretrained, spec.weights_key)) from err
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


def _offline_message(name: str, pretrained: str | None, weights_key: str) -> str:
    source = name if name.startswith("hf-hub:") else pretrained
    return (
        f"The CLIP weights {source!r} for {name} could not be downloaded (no internet?): "
        f"download them on a machine with internet and pass {weights_key}=PATH."
    )


def image_data_config(model) -> dict[str, Any]:
    """mean/std/interpolation/image size the image tower was trained with (open_clip's
    ``preprocess_cfg``), in the shape of timm's data config."""
    config = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    size = config.get("size", getattr(model.visual, "image_size", 224))
    return {
        "mean": tuple(config.get("mean", (0.48145466, 0.4578275, 0.40821073))),
        "std": tuple(config.get("std", (0.26862954, 0.26130258, 0.27577711))),
        "interpolation": config.get("interpolation", "bicubic"),
        "image_size": size[0] if isinstance(size, tuple | list) else int(size),
    }
