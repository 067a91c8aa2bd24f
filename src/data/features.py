"""Feature cache for frozen backbones: run the backbone once per image, train the head only.

With ``model.net.freeze=all`` and no augmentation of the training images, every epoch would
push the same pixels through the same frozen backbone. Computing the pooled features once
and training the head on them gives the same model, many times faster. With RandAugment
oversampling, ``data.feature_bank_views=V`` adds V banked views per copied image
(:mod:`src.data.bank`), from which each epoch draws its augmented copies.
"""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from src.data.bank import BankDataset, view_draws, view_seeds
from src.errors import check_choice

log = logging.getLogger(__name__)


def feature_cache_blocker(model: pl.LightningModule, datamodule) -> str | None:
    """Why the feature cache cannot be used here, or None when it can."""
    net = getattr(model, "net", None)
    if not hasattr(net, "forward_features") or not hasattr(net, "head"):
        return "the model has no separate backbone (use a timm or open_clip model)"
    if getattr(net, "freeze", None) != "all":
        return f"the backbone is not fully frozen (model.net.freeze={getattr(net, 'freeze', None)})"
    if getattr(datamodule, "augment_on", "cpu") == "gpu":
        return "data.augment_on=gpu leaves normalisation to the device; use augment_on=cpu"
    if datamodule.imbalance in ("oversample", "both") and not datamodule.feature_bank_views:
        return (
            "training images are augmented (RandAugment oversampling), so features change; "
            "set data.feature_bank_views=V (e.g. 8) to draw the copies from V banked views"
        )
    if getattr(model.hparams, "compile", False):
        return "model.compile=true compiles the image path only"
    return None


@torch.no_grad()
def extract(net, loader: DataLoader, device: torch.device, desc: str) -> TensorDataset:
    """Pooled features and labels of a whole loader, in its order."""
    features, labels = [], []
    for images, targets in tqdm(loader, desc=desc, leave=False, disable=None):  # None: TTY only
        features.append(net.forward_features(images.to(device)).float().cpu())
        labels.append(torch.as_tensor(targets))
    return TensorDataset(torch.cat(features), torch.cat(labels))


def with_feature_cache(model: pl.LightningModule, datamodule) -> pl.LightningDataModule:
    """The feature-serving datamodule when it gives the same model, else the image one."""
    blocker = feature_cache_blocker(model, datamodule)
    if blocker is not None:
        log.warning("Backbone features not cached, training from images: %s.", blocker)
        return datamodule
    return FeatureDataModule(datamodule, model)


class FeatureDataModule(pl.LightningDataModule):
    """Wraps an image datamodule: the same splits, served as cached backbone features."""

    def __init__(self, images, model: pl.LightningModule, device: str | None = None) -> None:
        super().__init__()
        self.images = images
        self.model = model
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.features: dict[str, TensorDataset] = {}

    def __getattr__(self, name: str):
        # everything but the loaders (class names, rows, test sets, ...) is the image
        # datamodule's
        if name in ("images", "model", "device", "features") or name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.images, name)

    def setup(self, stage: str | None = None) -> None:
        if self.features:
            return
        self.images.setup(stage)
        net = self.model.net
        was_training, original_device = net.training, next(net.parameters()).device
        net.eval().to(self.device)
        # the extraction must not use random numbers, so that training afterwards draws the
        # same dropout masks and shuffles as training from images does
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            for name, dataset in self.images.datasets.items():
                self.features[name] = self._extract(dataset, None, f"features {name}")
            sampler = self.images.train_sampler()
            if sampler is not None:  # oversampling (the blocker asked for banked views)
                self.features["train"] = self._bank(self.features["train"], sampler)
        net.train(was_training).to(original_device)
        self.model.inputs_are_features = True
        log.info(
            "Backbone features cached for %s.",
            ", ".join(f"{k} {len(v):,}" for k, v in self.features.items()),
        )

    def _extract(self, dataset, sampler, desc: str) -> TensorDataset:
        loader = DataLoader(
            dataset,
            batch_size=self.images.batch_size,
            sampler=sampler,
            num_workers=self.images.num_workers,
        )
        return extract(self.model.net, loader, self.device, desc)

    def _bank(self, plain: TensorDataset, sampler) -> BankDataset:
        """The training set's plain embeddings plus V views of every image it can copy."""
        views = self.images.feature_bank_views
        images = self.images.datasets["train"]
        items = sampler.copied_items()
        seeds = view_seeds(self.images.seed, len(images), views)
        start = time.perf_counter()
        banked = self._extract(images, view_draws(items, seeds, len(images)), "feature bank")
        embeddings, labels = plain.tensors
        bank = BankDataset(embeddings, banked.tensors[0].view(views, len(items), -1), items, labels)
        log.info(
            "Feature bank: %d views of %s of %s training images (%.0f MB) in %.1f s.",
            views,
            f"{len(items):,}",
            f"{len(images):,}",
            bank.nbytes / 2**20,
            time.perf_counter() - start,
        )
        return bank

    def _loader(self, name: str, sampler=None) -> DataLoader:
        # as the image loaders: no draws from the global generator (see RareSpeciesDataModule)
        generator = torch.Generator().manual_seed(self.images.seed)
        return DataLoader(
            self.features[name],
            batch_size=self.images.batch_size,
            sampler=sampler,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        # the image path's order, epoch by epoch (and where a resumed epoch starts)
        return self._loader("train", sampler=self.images.epoch_sampler(self.trainer))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self, name: str = "test") -> DataLoader:
        return self._loader(check_choice("test set", name, self.images.test_sets))

    def state_dict(self):
        return self.images.state_dict()
