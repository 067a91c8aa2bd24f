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


def test_copies_carry_their_own_augmentation_seed_through_pickling():
    import pickle

    from src.data.sampling import Draw

    draws = list(OversampleSampler(LABELS, seed=0))
    copies = [d for d in draws if d >= len(LABELS)]
    assert copies and all(isinstance(d, Draw) for d in copies)
    assert len({d.seed for d in copies}) == len(copies)
    again = pickle.loads(pickle.dumps(copies[0]))  # as sent to a loader worker
    assert again == copies[0] and again.seed == copies[0].seed


def test_epoch_order_depends_on_seed_and_epoch_only_and_resumes_mid_epoch():
    from src.data.sampling import ShuffleSampler

    sampler = ShuffleSampler(10, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    torch.manual_seed(123)  # the global generator plays no part
    other = ShuffleSampler(10, seed=5)
    other.set_epoch(2)
    assert list(other) == full
    other.resume(epoch=2, done=4)
    assert list(other) == full[4:]
    other.set_epoch(3)  # the skip applies to its own epoch only
    assert len(list(other)) == 10


def test_augmented_copy_is_the_same_in_any_process_state(tiny_root):
    dm = RareSpeciesDataModule(str(tiny_root), image_size=32, imbalance="oversample", num_workers=0)
    dm.setup("fit")
    train = dm.datasets["train"]
    copy = next(d for d in dm.train_sampler() if d >= len(train))
    torch.manual_seed(0)
    first, _ = train[copy]
    torch.manual_seed(1)  # another worker, another resume: another global state
    state = torch.get_rng_state()
    second, _ = train[copy]
    assert torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), state)  # the copy drew nothing from it
