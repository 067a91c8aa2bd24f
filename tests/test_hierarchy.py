"""The optional hierarchical loss (src/models/hierarchy.py) and its weight-0 promise."""

import pytest
import pytorch_lightning as pl
import torch

from src.data.datamodule import RareSpeciesDataModule
from src.errors import ConfigError
from src.models.classifier import SpeciesClassifier
from src.models.hierarchy import HierarchyLoss
from tests.helpers import tiny_trainer

CLASSES = ["a", "b", "c", "d"]
TAXONOMY = {"order": ["o1", "o1", "o2", "o3"], "phylum": ["p1", "p1", "p1", "p2"]}


def test_the_loss_is_the_cross_entropy_of_summed_probabilities():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 0.0]])
    labels = torch.tensor([1, 3])
    p = logits.softmax(1)
    order = -(torch.log(p[0, 0] + p[0, 1]) + torch.log(p[1, 3])) / 2
    phylum = -(torch.log(p[0, :3].sum()) + torch.log(p[1, 3])) / 2
    loss = HierarchyLoss(TAXONOMY, CLASSES, 0.5)(logits, labels)
    assert loss.item() == pytest.approx(0.5 * (order + phylum).item() / 2, rel=1e-6)


def test_bad_weights_are_one_sentence():
    with pytest.raises(ConfigError, match="must be 0"):
        HierarchyLoss(TAXONOMY, CLASSES, -1.0)
    with pytest.raises(ConfigError, match="hierarchy_loss_weight=0.5 needs ranks"):
        HierarchyLoss({}, CLASSES, 0.5)


def fitted_weights(tiny_source, tmp_path, **model_args) -> dict[str, torch.Tensor]:
    dm = RareSpeciesDataModule(
        root=str(tiny_source), image_size=32, num_workers=0, output_dir=str(tmp_path / "run")
    )
    dm.setup("fit")
    pl.seed_everything(3, workers=True)
    net = {"_target_": "src.models.baseline.BaselineCNN", "channels": [4, 8], "hidden": 8}
    if model_args:
        model_args["taxonomy"] = dm.taxonomy
    model = SpeciesClassifier(net, dm.class_names, **model_args)
    tiny_trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=1).fit(model, dm)
    return {key: value.clone() for key, value in model.state_dict().items()}


def test_weight_zero_trains_exactly_as_without_the_loss(tiny_source, tmp_path):
    plain = fitted_weights(tiny_source, tmp_path / "plain")  # as built before the loss existed
    zero = fitted_weights(tiny_source, tmp_path / "zero", hierarchy_loss_weight=0.0)
    weighted = fitted_weights(tiny_source, tmp_path / "half", hierarchy_loss_weight=0.5)
    assert plain.keys() == zero.keys() == weighted.keys()  # checkpoints stay interchangeable
    assert all(torch.equal(plain[key], zero[key]) for key in plain)
    assert not all(torch.equal(plain[key], weighted[key]) for key in plain)
