import numpy as np
import pytest
import torch

from src.data.datamodule import RareSpeciesDataModule
from src.data.sampling import OversampleSampler, balanced_class_weights

LABELS = [0] * 10 + [1] * 4 + [2] * 1 + [3] * 7


def test_oversampling_tops_every_class_up_to_the_largest():
    sampler = OversampleSampler(LABELS, seed=0)
    plan = sampler.plan()
    n = len(LABELS)
    assert len(plan) == len(sampler) == 4 * 10
    originals, copies = plan[plan < n], plan[plan >= n] - n
    assert sorted(originals.tolist()) == list(range(n))  # every original exactly once
    labels = np.asarray(LABELS)
    per_class = np.bincount(labels[plan % n], minlength=4)
    assert per_class.tolist() == [10, 10, 10, 10]
    copies_per_class = np.bincount(labels[copies], minlength=4)
    assert copies_per_class.tolist() == [0, 6, 9, 3]  # copies of the class's own images


def test_oversampling_is_fresh_each_epoch_and_reproducible():
    sampler = OversampleSampler(LABELS, seed=0)
    first = sampler.plan()
    sampler.set_epoch(1)
    second = sampler.plan()
    assert sorted(first.tolist()) != sorted(second.tolist()) or not np.array_equal(first, second)
    sampler.set_epoch(0)
    assert np.array_equal(sampler.plan(), first)
    assert list(iter(sampler)) == first.tolist()


def test_balanced_class_weights_formula():
    weights = balanced_class_weights(LABELS, num_classes=5)
    n, k = len(LABELS), 4  # class 4 is absent: weight 0, not counted in k
    expected = [n / (k * 10), n / (k * 4), n / (k * 1), n / (k * 7), 0.0]
    assert torch.allclose(weights, torch.tensor(expected))
    counts = np.bincount(LABELS)
    assert float((weights[:4].numpy() * counts).sum()) == pytest.approx(n)


def test_datamodule_oversample_uses_augmented_copies(tiny_root, tmp_path):
    dm = RareSpeciesDataModule(
        root=str(tiny_root),
        image_size=32,
        num_workers=0,
        imbalance="oversample",
        output_dir=str(tmp_path),
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    train = dm.datasets["train"]
    counts = np.bincount(train.labels)
    assert len(loader.sampler) == counts.max() * len(counts)
    augmented = next(i for i in loader.sampler if i >= len(train))
    plain, _ = train[augmented - len(train)]
    torch.manual_seed(1)
    copy, label = train[augmented]
    assert label == train.labels[augmented - len(train)]
    assert copy.shape == plain.shape and not torch.equal(copy, plain)
    assert dm.class_weights is None
    assert len(dm.val_dataloader().dataset) == len(dm.rows["val"])  # never resampled


@pytest.mark.parametrize(
    "mode, weighted, oversampled",
    [
        ("none", False, False),
        ("class_weights", True, False),
        ("oversample", False, True),
        ("both", True, True),
    ],
)
def test_imbalance_modes(tiny_root, tmp_path, mode, weighted, oversampled):
    dm = RareSpeciesDataModule(
        root=str(tiny_root), image_size=32, num_workers=0, imbalance=mode, output_dir=str(tmp_path)
    )
    dm.setup("fit")
    assert (dm.class_weights is not None) == weighted
    assert (dm.train_sampler() is not None) == oversampled
