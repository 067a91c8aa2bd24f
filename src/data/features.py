"""Feature cache for frozen backbones: run the backbone once per image, train the head only.

With ``model.net.freeze=all`` and no augmentation of the training images, every epoch would
push the same pixels through the same frozen backbone. Computing the pooled features once
and training the head on them gives the same model, many times faster.
"""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

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
    if datamodule.imbalance in ("oversample", "both"):
        return "training images are augmented (RandAugment oversampling), so features change"
    if getattr(model.hparams, "compile", False):
        return "model.compile=true compiles the image path only"
    return None


@torch.no_grad()
def extract(net, loader: DataLoader, device: torch.device, desc: str) -> TensorDataset:
    """Pooled features and labels of a whole loader, in its order."""
    features, labels = [], []
    for images, targets in tqdm(loader, desc=desc, leave=False):
        features.append(net.forward_features(images.to(device)).float().cpu())
        labels.append(torch.as_tensor(targets))
    return TensorDataset(torch.cat(features), torch.cat(labels))


def with_feature_cache(model: pl.LightningModule, datamodule) -> pl.LightningDataModule:
    """The feature-serving datamodule when it gives the same model, else the image one."""
    blocker = feature_cache_blocker(model, datamodule)
    if blocker is not None:
        log.info("data.feature_cache=true, but training from images: %s.", blocker)
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
                loader = DataLoader(
                    dataset,
                    batch_size=self.images.batch_size,
                    shuffle=False,
                    num_workers=self.images.num_workers,
                )
                self.features[name] = extract(net, loader, self.device, f"features {name}")
        net.train(was_training).to(original_device)
        self.model.inputs_are_features = True
        log.info(
            "Backbone features cached for %s.",
            ", ".join(f"{k} {len(v):,}" for k, v in self.features.items()),
        )

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
