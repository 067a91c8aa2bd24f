"""Loading an open_clip model (CLIP, OpenCLIP, BioCLIP): the one path every user of CLIP
takes (the "only animals" filter, the CLIP backbone, the zero-/few-shot baselines).

Weights come from a local file (offline machines), an open_clip tag (``openai``,
``laion2b_...``), a ``hf-hub:`` model id (which carries its own weights, e.g.
``hf-hub:imageomics/bioclip``) or nowhere (random initialisation, as the tests do).

A model can also be built from its open_clip config (``model_cfg`` and ``preprocess_cfg``,
the ``open_clip_config.json`` of a hub repository) with no hub, config folder or weights:
:func:`image_tower_config` gives that config for an image tower, and checkpoints of
:class:`~src.models.clip_net.ClipNet` carry it, so they load offline.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.errors import UserFacingError

log = logging.getLogger(__name__)
QUICKGELU_TAGS = ("openai",)
HF_HUB = "hf-hub:"
LOCAL_DIR = "local-dir:"
HUB_CONFIG_FILE = "open_clip_config.json"
# the smallest text tower open_clip builds: image-tower configs carry it in place of the real
# one, which is dropped anyway (and may need the hub for its Hugging Face text config)
STUB_TEXT_CFG = {"context_length": 2, "vocab_size": 2, "width": 8, "heads": 1, "layers": 1}


class ClipUnavailableError(UserFacingError, RuntimeError):
    """The CLIP model or its weights cannot be had."""


@dataclass(frozen=True)
class ClipSpec:
    """Which open_clip model, and where its weights come from.

    ``pretrained``: an open_clip weights tag; ``None`` means the name's own weights (a
    ``hf-hub:`` id's; none for an architecture name), ``False`` no weights at all.
    ``weights``: a local open_clip checkpoint; for a ``hf-hub:`` id it is the hub folder's
    weights file, with the folder's ``open_clip_config.json`` beside it. ``config_dir``: a
    folder of extra open_clip architecture configs (JSON), registered before loading.
    ``weights_key`` names the config key of ``weights`` in error messages.
    ``open_clip_config``: build this config (see :func:`image_tower_config`) instead, without
    weights; what a checkpoint's trained weights are then loaded into.
    """

    model: str = "ViT-B-16-quickgelu"
    pretrained: str | bool | None = "openai"
    weights: str | None = None
    config_dir: str | None = None
    weights_key: str = "filter.weights"
    open_clip_config: Mapping[str, Any] | None = None

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
        pretrained=weights_tag(net["name"], net.get("pretrained")),
        weights=net.get("weights"),
        config_dir=net.get("config_dir"),
        weights_key="model.net.weights",
    )


def weights_tag(name: str, pretrained: str | bool | None) -> str | bool | None:
    """``pretrained=true`` names no tag: a hf-hub id's own weights, else one sentence."""
    if pretrained is not True:
        return pretrained
    if name.startswith(HF_HUB):
        return None
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name)
    raise ClipUnavailableError(
        f"model.net.pretrained=true does not say which weights {name} should load: give an "
        f"open_clip tag ({', '.join(tags[:5]) or 'none known for this model'}) or "
        "model.net.weights=PATH."
    )


def resolve_model_name(model: str, pretrained: str | None) -> str:
    """OpenAI's CLIP weights were trained with QuickGELU: use the -quickgelu architecture.

    ``ViT-B-16`` with ``openai`` weights would run the wrong activation and only warn.
    """
    import open_clip

    if pretrained in QUICKGELU_TAGS and not model.endswith("-quickgelu") and ":" not in model:
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
    from open_clip.transform import PreprocessCfg, image_transform_v2

    model = create_clip(spec, device)
    preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    return model, preprocess, open_clip.get_tokenizer(_tokenizer_source(spec))


def create_clip(spec: ClipSpec, device: str = "cpu"):
    """The open_clip model of ``spec`` in eval mode, or one sentence saying what to do."""
    import open_clip

    if spec.open_clip_config is not None:
        return _from_config(spec.open_clip_config, device)
    register_configs(spec.config_dir)
    name = resolve_model_name(spec.model, spec.pretrained)
    if spec.weights and not Path(spec.weights).is_file():
        raise ClipUnavailableError(f"{spec.weights_key}={spec.weights} does not exist.")
    if spec.weights and name.startswith(HF_HUB):
        config = _hub_folder_config(spec)
        try:
            return _from_config(config, device, weights=spec.weights)
        except (RuntimeError, OSError, ValueError) as err:
            raise _unloadable(spec, name, err) from err
    _check_known(name)
    # a hf-hub: id carries its weights; an architecture name has them only from a tag or file
    wanted = bool(spec.weights) or (
        spec.pretrained is not False and (bool(spec.pretrained) or name.startswith(HF_HUB))
    )
    if not wanted and spec.pretrained is None:  # False: a checkpoint brings the weights
        log.warning(
            "%s runs randomly initialised: no weights tag and no %s were given, so its "
            "features mean nothing (fine for tests, not for results).",
            name,
            spec.weights_key,
        )
    try:
        model = open_clip.create_model(
            name,
            pretrained=spec.weights or spec.pretrained or None,
            load_weights=wanted,
            require_pretrained=wanted,  # not a silently random model when the weights fail
            device=device,
        )
    except (RuntimeError, OSError) as err:
        if spec.weights:
            raise _unloadable(spec, name, err) from err
        if isinstance(err, RuntimeError) and (
            "Unknown model" in str(err) or "not found" in str(err).lower()
        ):
            raise ClipUnavailableError(f"open_clip has no model {name!r}: {err}") from err
        offline = _offline_message(name, spec.pretrained, spec.weights_key)
        raise ClipUnavailableError(offline) from err
    return model.eval()


def _unloadable(spec: ClipSpec, name: str, err: BaseException) -> ClipUnavailableError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ClipUnavailableError(
        f"{spec.weights_key}={spec.weights} could not be loaded into {name} ({first[:200]}); "
        "give the open_clip checkpoint of that model."
    )


def _check_known(name: str) -> None:
    """An architecture name open_clip does not know, in one sentence with close names."""
    import open_clip

    if ":" in name:  # hf-hub: and local-dir: name their own config
        return
    known = open_clip.list_models()
    if name.replace("/", "-") not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ClipUnavailableError(
            f"open_clip has no model {name!r}{hint} (or give a hf-hub: id, or a folder of "
            "open_clip configs as config_dir)."
        )


def _tokenizer_source(spec: ClipSpec) -> str:
    if spec.weights and spec.model.startswith(HF_HUB):  # offline: the hub folder's config
        return f"{LOCAL_DIR}{Path(spec.weights).parent}"
    return resolve_model_name(spec.model, spec.pretrained)


def _hub_folder_config(spec: ClipSpec) -> dict[str, Any]:
    """The ``open_clip_config.json`` beside a ``hf-hub:`` model's local weights file."""
    path = Path(spec.weights).parent / HUB_CONFIG_FILE
    if not path.is_file():
        raise ClipUnavailableError(
            f"{spec.weights_key}={spec.weights} is the weights of {spec.model}, whose "
            f"architecture is in the hub folder's {HUB_CONFIG_FILE}: download the whole folder "
            f"(hf download {spec.model[len(HF_HUB) :]} --local-dir DIR) and pass "
            f"{spec.weights_key}=DIR/<its weights file>."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def _from_config(config: Mapping[str, Any], device: str, weights: str | None = None):
    """The model of an open_clip config (``model_cfg`` + ``preprocess_cfg``), with the weights
    of a local file or none: nothing is downloaded (open_clip's ``local-dir:`` schema)."""
    import open_clip

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / HUB_CONFIG_FILE).write_text(json.dumps(_plain(config)), encoding="utf-8")
        with _no_random_init_warning():  # the weights come next, or from a checkpoint
            model = open_clip.create_model(f"{LOCAL_DIR}{folder}", load_weights=False)
    if weights:
        open_clip.load_checkpoint(model, weights)
    return model.to(device).eval()


@contextlib.contextmanager
def _no_random_init_warning() -> Iterator[None]:
    """open_clip warns (on the root logger) that a model without weights is random."""

    def keep(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("initialized randomly" in message or "no CLIP weights found" in message)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def image_tower_config(spec: ClipSpec, model) -> dict[str, Any]:
    """The open_clip config that rebuilds ``model``'s image tower without hub, config folder
    or weights: its architecture (a stub in place of the text tower) and pre-processing."""
    import open_clip

    if spec.open_clip_config is not None:
        return _plain(spec.open_clip_config)
    name = resolve_model_name(spec.model, spec.pretrained)
    if name.startswith(HF_HUB) and spec.weights:
        model_cfg = _hub_folder_config(spec)["model_cfg"]
    elif name.startswith(HF_HUB):  # fetched (and cached) by create_clip already
        from open_clip.pretrained import download_pretrained_from_hf

        path = download_pretrained_from_hf(name[len(HF_HUB) :], filename=HUB_CONFIG_FILE)
        model_cfg = json.loads(Path(path).read_text(encoding="utf-8"))["model_cfg"]
    elif name.startswith(LOCAL_DIR):
        path = Path(name[len(LOCAL_DIR) :]) / HUB_CONFIG_FILE
        model_cfg = json.loads(path.read_text(encoding="utf-8"))["model_cfg"]
    else:
        model_cfg = open_clip.get_model_config(name.replace("/", "-"))
    own = set(inspect.signature(open_clip.CLIP.__init__).parameters)
    tower = {k: v for k, v in model_cfg.items() if k in own - {"self", "text_cfg", "cast_dtype"}}
    return _plain(
        {
            "model_cfg": {**tower, "text_cfg": dict(STUB_TEXT_CFG)},
            "preprocess_cfg": dict(model.visual.preprocess_cfg),
        }
    )


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """JSON types only (tuples become lists; Hydra/OmegaConf containers become dicts)."""
    with contextlib.suppress(ImportError):
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            config = OmegaConf.to_container(config, resolve=True)
    return json.loads(json.dumps(config))


def _offline_message(name: str, pretrained: str | bool | None, weights_key: str) -> str:
    if name.startswith(HF_HUB):
        return (
            f"The CLIP model {name} could not be downloaded from the Hugging Face hub (no "
            f"internet?): download its folder on a machine with internet (hf download "
            f"{name[len(HF_HUB) :]} --local-dir DIR) and pass {weights_key}=PATH, "
            f"its weights file (open_clip_model.safetensors or open_clip_pytorch_model.bin)."
        )
    return (
        f"The CLIP weights {pretrained!r} for {name} could not be downloaded (no internet?): "
        f"load them once on a machine with internet (they land in the Hugging Face cache) "
        f"and pass {weights_key}=PATH, that weights file."
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
