"""Image embeddings: equal to the model's forward pass, cached, and computed again exactly
when something they depend on changed."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from src.evaluation.embeddings import (
    ImageEmbeddings,
    UnreadableImagesError,
    model_identity,
    random_init,
)
from src.models.clip import ClipSpec, load_clip


class CountingModel(torch.nn.Module):
    """The model, counting the images its image tower sees."""

    def __init__(self, model):
        super().__init__()
        self.model, self.images = model, 0

    def encode_image(self, images):
        self.images += len(images)
        return self.model.encode_image(images)


@pytest.fixture(scope="module")
def tiny_clip(clip_configs):
    spec = ClipSpec("tiny-clip", None, config_dir=str(clip_configs))
    torch.manual_seed(0)
    model, preprocess, _ = load_clip(spec)
    return spec, model, preprocess


def files_of(root, n=12):
    return pd.read_csv(root / "metadata.csv")["file_path"].head(n).tolist()


def embedder(tiny_clip, root, cache, seed=0, model=None):
    spec, loaded, preprocess = tiny_clip
    return ImageEmbeddings(
        model or loaded, preprocess, model_identity(spec, seed), root, cache, batch_size=5
    )


def test_cached_embeddings_equal_the_forward_pass_and_are_not_computed_again(
    tiny_clip, tiny_source, tmp_path
):
    _, model, preprocess = tiny_clip
    files = files_of(tiny_source)
    first = embedder(tiny_clip, tiny_source, tmp_path)(files)
    pixels = torch.stack([preprocess(Image.open(tiny_source / f).convert("RGB")) for f in files])
    with torch.no_grad():
        forward = model.encode_image(pixels).numpy()
    assert first.shape == forward.shape and first.dtype == np.float32
    np.testing.assert_allclose(first, forward, atol=1e-5)

    (cached,) = tmp_path.glob("*.npz")
    written = cached.stat().st_mtime_ns
    counting = CountingModel(model)
    again = embedder(tiny_clip, tiny_source, tmp_path, model=counting)(files)
    assert counting.images == 0  # read from the cache, no forward pass
    np.testing.assert_array_equal(again, first)
    assert cached.stat().st_mtime_ns == written


def test_a_changed_image_order_seed_or_file_computes_again(tiny_clip, tiny_root, tmp_path):
    files = files_of(tiny_root, 6)
    counting = CountingModel(tiny_clip[1])
    embed = embedder(tiny_clip, tiny_root, tmp_path, model=counting)
    embed(files)
    assert counting.images == 6
    embed(files[::-1])  # another order is another file list
    assert counting.images == 12
    embedder(tiny_clip, tiny_root, tmp_path, seed=1, model=counting)(files)  # other random weights
    assert counting.images == 18
    path = tiny_root / files[0]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # replaced
    embed(files)
    assert counting.images == 24
    embed(files)
    assert counting.images == 24


def test_a_broken_cache_file_is_computed_again(tiny_clip, tiny_source, tmp_path, caplog):
    files = files_of(tiny_source, 4)
    counting = CountingModel(tiny_clip[1])
    embed = embedder(tiny_clip, tiny_source, tmp_path, model=counting)
    expected = embed(files)
    embed.path(files).write_bytes(b"not an npz file")
    with caplog.at_level("WARNING"):
        np.testing.assert_allclose(embed(files), expected, atol=1e-6)
    assert counting.images == 8 and "Ignoring the embedding cache" in caplog.text


def test_an_image_unreadable_since_the_scan_is_one_sentence(tiny_clip, tiny_root, tmp_path):
    files = files_of(tiny_root, 3)
    (tiny_root / files[1]).write_bytes(b"")
    with pytest.raises(UnreadableImagesError, match=r"1 image\(s\) under .* could not be read"):
        embedder(tiny_clip, tiny_root, None)(files)


def test_which_specs_have_random_weights():
    assert random_init(ClipSpec("tiny-clip", None))
    assert random_init(ClipSpec("ViT-B-16", False))
    assert not random_init(ClipSpec("ViT-B-16", "openai"))
    assert not random_init(ClipSpec("hf-hub:imageomics/bioclip", None))
    assert not random_init(ClipSpec("ViT-B-16", None, weights="w.safetensors"))
