"""The decode-once cache: the same tensors as the JPEG path, rebuilt when stale."""

import os

import torch

from src.data.cache import FINGERPRINT_FILE
from src.data.datamodule import RareSpeciesDataModule
from tests.helpers import tiny_datamodule as datamodule


def test_cache_gives_the_same_tensors_as_jpegs(tiny_root, tmp_path):
    plain, cached = datamodule(tiny_root, tmp_path), datamodule(tiny_root, tmp_path, cache=True)
    plain.setup("fit")
    cached.setup("fit")
    assert cached.datasets["train"].cache is not None
    for split in ("train", "val", "test"):
        assert cached.datasets[split].labels == plain.datasets[split].labels
        for i in range(len(plain.datasets[split])):
            assert torch.equal(cached.datasets[split][i][0], plain.datasets[split][i][0])


def test_stale_cache_is_rebuilt(tiny_root, tmp_path):
    first = datamodule(tiny_root, tmp_path, cache=True).decoded_cache()
    stamp = (first.folder / FINGERPRINT_FILE).read_text()
    again = datamodule(tiny_root, tmp_path, cache=True).decoded_cache()
    assert (again.folder / FINGERPRINT_FILE).read_text() == stamp  # reused
    rel = next(iter(first.rows))
    os.utime(tiny_root / rel, ns=(1, 1))  # the source changed
    rebuilt = datamodule(tiny_root, tmp_path, cache=True).decoded_cache()
    assert (rebuilt.folder / FINGERPRINT_FILE).read_text() != stamp
    other_size = RareSpeciesDataModule(
        root=str(tiny_root), image_size=24, num_workers=0, cache=True
    ).decoded_cache()
    assert other_size.folder != first.folder and other_size[rel].shape == (24, 24, 3)
