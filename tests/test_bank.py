"""The augmentation bank: banked views are the augmented forward pass, drawn as the sampler
draws copies today."""

from collections import Counter

import numpy as np
import pytest
import torch

from src.data.bank import BankDataset, view_draws, view_of, view_seeds
from src.data.features import FeatureDataModule, feature_cache_blocker
from src.data.sampling import Draw, OversampleSampler
from tests.helpers import resnet18_classifier
from tests.helpers import tiny_datamodule as datamodule

VIEWS = 3


@pytest.fixture
def banked(tiny_root, tmp_path):
    """A frozen resnet18 over the tiny set, oversampled, banked with the default 2 workers."""
    images = datamodule(
        tiny_root, tmp_path, imbalance="oversample", feature_bank_views=VIEWS, num_workers=2
    )
    images.prepare_data()
    images.setup("fit")
    model = resnet18_classifier(images.class_names, freeze="all")
    images.use_data_config(model.data_config)
    features = FeatureDataModule(images, model, device="cpu")
    features.setup("fit")
    return images, model, features


def test_banked_views_equal_the_augmented_forward_pass(banked):
    images, model, features = banked
    bank, train = features.features["train"], images.datasets["train"]
    n = len(train)
    seeds = view_seeds(images.seed, n, VIEWS)
    sampler = images.train_sampler()
    items = sampler.copied_items()
    model.net.eval()
    for item in items[:: max(1, len(items) // 4)]:
        for v in range(VIEWS):
            image, label = train[Draw(int(item) + n, int(seeds[v, item]))]
            with torch.no_grad():
                expected = model.net.forward_features(image[None])[0]
            # a sampler's copy whose seed picks view v is served that view
            served, served_label = bank[Draw(int(item) + n, VIEWS * 7 + v)]
            torch.testing.assert_close(served, expected, rtol=1e-4, atol=1e-5)
            assert int(served_label) == label
        # the views differ from each other and from the plain embedding
        plain = bank[int(item)][0]
        assert not torch.allclose(bank.views[0, bank.row[item]], bank.views[1, bank.row[item]])
        assert not torch.allclose(plain, bank.views[0, bank.row[item]])


def test_an_epoch_draws_from_the_bank_in_the_image_paths_proportions(banked):
    images, _, features = banked
    bank = features.features["train"]
    n = len(bank)
    sampler = images.epoch_sampler()
    draws = sampler.draws()
    # the image path's epoch: each original once, copies topping every class up
    labels = np.asarray(images.datasets["train"].labels)
    counts = Counter(labels[[int(d) % n for d in draws]].tolist())
    assert set(counts.values()) == {sampler.target_count}
    loader = features.train_dataloader()
    served = torch.cat([y for _, y in loader])
    assert Counter(served.tolist()) == counts
    # copies come from their own image's views, originals are the plain embeddings
    embeddings = torch.cat([x for x, _ in loader])
    for draw, embedding in list(zip(draws, embeddings))[:200]:
        item = int(draw) % n
        if int(draw) < n:
            torch.testing.assert_close(embedding, bank.plain[item])
        else:
            torch.testing.assert_close(embedding, bank.views[draw.seed % VIEWS, bank.row[item]])
    assert loader.dataset is bank and features.model.inputs_are_features


def test_views_are_picked_evenly_and_replayed():
    sampler = OversampleSampler([0] * 50 + [1] * 5 + [2] * 2, seed=3)
    picks = [view_of(d, 4) for d in sampler.draws() if int(d) >= 57]
    share = np.bincount(picks, minlength=4) / len(picks)
    assert len(picks) == 93 and share.min() > 0.1  # 93 copies over 4 views
    assert picks == [view_of(d, 4) for d in sampler.draws() if int(d) >= 57]


def test_only_copied_classes_are_banked():
    labels = [0] * 5 + [1] * 2 + [2] * 5 + [3]
    items = OversampleSampler(labels, target_count=5).copied_items()
    assert items.tolist() == [5, 6, 12]
    seeds = view_seeds(0, len(labels), 2)
    draws = view_draws(items, seeds, len(labels))
    assert [int(d) for d in draws] == [18, 19, 25] * 2
    assert [d.seed for d in draws] == [int(seeds[v, i]) for v in range(2) for i in items]
    bank = BankDataset(
        torch.zeros(len(labels), 4), torch.ones(2, 3, 4), items, torch.tensor(labels)
    )
    with pytest.raises(IndexError, match="no banked views"):
        bank[Draw(0 + len(labels), 1)]
    with pytest.raises(ValueError, match="without an augmentation seed"):
        bank[5 + len(labels)]


def test_oversampling_without_views_is_refused_with_the_fix(tiny_root, tmp_path):
    frozen = resnet18_classifier(["a", "b"], freeze="all")
    oversampled = datamodule(tiny_root, tmp_path, imbalance="oversample")
    assert "data.feature_bank_views=V" in feature_cache_blocker(frozen, oversampled)
    banked = datamodule(tiny_root, tmp_path, imbalance="oversample", feature_bank_views=2)
    assert banked.feature_cache and feature_cache_blocker(frozen, banked) is None
