"""Loading open_clip models: one path for the filter, the CLIP backbone and the baselines."""

import pytest

from src.models.clip import (
    ClipSpec,
    ClipUnavailableError,
    image_data_config,
    load_clip,
    resolve_model_name,
)
from tests.helpers import offline_error


def test_openai_weights_get_quickgelu():
    assert resolve_model_name("ViT-B-16", "openai") == "ViT-B-16-quickgelu"
    assert resolve_model_name("ViT-B-16-quickgelu", "openai") == "ViT-B-16-quickgelu"
    assert resolve_model_name("ViT-B-16", "laion2b_s34b_b88k") == "ViT-B-16"


def test_offline_openai_weights_fail_in_one_sentence():
    code = (
        "from src.models.clip import ClipSpec, load_clip\n"
        "load_clip(ClipSpec('ViT-B-16', 'openai'))\n"
    )
    stderr = offline_error(code)
    assert "ClipUnavailableError: The CLIP weights 'openai' for ViT-B-16-quickgelu could not" in (
        stderr
    )
    assert "filter.weights=PATH" in stderr


def test_a_tiny_architecture_loads_without_weights(clip_configs):
    model, preprocess, tokenizer = load_clip(ClipSpec("tiny-clip", None, config_dir=None))
    config = image_data_config(model)
    assert config["image_size"] == 32 and config["interpolation"] == "bicubic"
    assert len(config["mean"]) == len(config["std"]) == 3
    assert tokenizer(["a photo of a bird"]).shape[0] == 1


def test_a_missing_weights_file_or_config_folder_is_one_sentence(tmp_path):
    missing = str(tmp_path / "no.bin")
    spec = ClipSpec("ViT-B-16", None, weights=missing, weights_key="model.net.weights")
    with pytest.raises(ClipUnavailableError, match=r"model.net.weights=.*no.bin does not exist"):
        load_clip(spec)
    with pytest.raises(ClipUnavailableError, match="config folder .* does not exist"):
        load_clip(ClipSpec("tiny-clip", None, config_dir=str(tmp_path / "nowhere")))
