"""The LightningModule: every model config trains a step, class weights weigh the loss, and
its saved config: a checkpoint alone rebuilds the model, old layout too.

``tests/data/old_layout`` holds real checkpoints written before the model config was nested
(``architecture`` and the network's keys beside the module's own); see its README.
"""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from src.data.images import DEFAULT_MAX_PIXELS, load_rgb
from src.models.classifier import SpeciesClassifier, load_classifier
from src.predict import image_pipeline
from tests.helpers import (
    MODELS,
    NAMES,
    build,
    exported,
    model_config,
    run_module,
    same_test_metrics,
)

OLD_LAYOUT = Path(__file__).parent / "data" / "old_layout"
OLD_NETS = {"baseline": "src.models.baseline.BaselineCNN", "timm": "src.models.timm_net.TimmNet"}


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_trains_a_step(name):
    torch.manual_seed(0)
    model = build(name)
    model.train()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 4])
    loss = model.loss_fn(model(x), y)
    loss.backward()
    head_grads = (
        [p.grad for p in model.net.head.parameters()]
        if name != "baseline"
        else [p.grad for p in model.net.parameters()]
    )
    assert all(g is not None and torch.isfinite(g).all() for g in head_grads)
    assert model(x).shape == (2, len(NAMES))
    assert set(model.data_config) >= {"mean", "std", "interpolation"}


def test_class_weights_change_the_loss():
    torch.manual_seed(0)
    plain = build("baseline")
    weighted = build("baseline")
    weighted.load_state_dict(plain.state_dict(), strict=False)
    weighted.loss_fn.weight = torch.tensor([5.0, 1, 1, 1, 1, 1, 1])
    logits, y = torch.randn(4, 7), torch.tensor([0, 1, 2, 0])
    assert not torch.isclose(plain.loss_fn(logits, y), weighted.loss_fn(logits, y))
    model = instantiate(
        model_config("baseline"), class_names=NAMES, class_weights=[2.0] * 7, _recursive_=False
    )
    assert model.loss_fn.weight.tolist() == [2.0] * 7


def test_training_logs_epoch_means_and_the_step_loss_at_the_loggers_steps(tmp_path):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = build("baseline", "model.net.dropout=0.0")  # lr 0 below: a fixed function
    images, labels = torch.rand(40, 3, 32, 32), torch.randint(0, len(NAMES), (40,))
    loader = DataLoader(TensorDataset(images, labels), batch_size=8)  # 5 batches
    logger = pl.loggers.CSVLogger(tmp_path)
    model.configure_optimizers = lambda: torch.optim.SGD(model.parameters(), lr=0.0)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
    )
    trainer.fit(model, loader)
    history = pd.read_csv(Path(logger.log_dir) / "metrics.csv")
    steps = history.dropna(subset=["train/loss_step"])
    epochs = history.dropna(subset=["train/loss_epoch"])
    assert len(steps) == 10 and len(epochs) == 2  # every step (log_every_n_steps=1)
    model.train()
    with torch.no_grad():  # what each training batch scored (BatchNorm on batch statistics)
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    for epoch in (0, 1):  # equal batches: the epoch loss is the mean of its step losses
        step_losses = steps[steps["epoch"] == epoch]["train/loss_step"]
        assert epochs.iloc[epoch]["train/loss_epoch"] == pytest.approx(step_losses.mean(), rel=1e-5)
        assert epochs.iloc[epoch]["train/acc"] == pytest.approx(correct / 40)
    sparse = pl.Trainer(
        max_epochs=1,
        logger=pl.loggers.CSVLogger(tmp_path / "sparse"),
        log_every_n_steps=2,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
    )
    sparse.fit(model, loader)
    sparse_history = pd.read_csv(Path(sparse.logger.log_dir) / "metrics.csv")
    assert sparse_history["train/loss_step"].notna().sum() == 2  # steps 2 and 4 of 5


@pytest.fixture(params=sorted(OLD_NETS))
def old_run(request, tmp_path) -> Path:
    """A copy of an old-layout run folder: checkpoints/best.ckpt, split/, test_metrics.json."""
    return Path(shutil.copytree(OLD_LAYOUT / request.param, tmp_path / request.param))


def forward_probabilities(model: SpeciesClassifier, paths: list[Path]) -> torch.Tensor:
    """The loaded model's own softmax on the images, through the checkpoint's pipeline."""
    pipeline = image_pipeline(model, model.datamodule_state)
    size = pipeline.image_size
    images = torch.stack([pipeline(load_rgb(p, DEFAULT_MAX_PIXELS, size)) for p in paths])
    with torch.no_grad():
        return model.eval()(images).softmax(1)


def test_an_old_layout_checkpoint_loads_with_its_network(old_run, tiny_source):
    model = load_classifier(old_run / "checkpoints" / "best.ckpt")
    kind = old_run.name
    assert model.hparams.net["_target_"] == OLD_NETS[kind]
    assert "architecture" not in model.hparams
    families = sorted(pd.read_csv(tiny_source / "metadata.csv")["family"].unique())
    assert model.class_names == families
    if kind == "timm":  # the checkpoint holds the weights: nothing is downloaded
        assert model.hparams.net["backbone"] == "test_efficientnet"
        assert model.hparams.net["pretrained"] is False and model.hparams.net["weights"] is None
        assert model.hparams.net["head"]["hidden"] == [16]
    else:
        assert model.hparams.net["channels"] == [8, 16] and model.hparams.net["hidden"] == 16


def test_evaluate_reproduces_an_old_layout_runs_test_metrics(old_run, tiny_source, tmp_path):
    result = run_module(
        tmp_path,
        "src.evaluate",
        f"ckpt_path={old_run / 'checkpoints' / 'best.ckpt'}",
        "data=rarespecies",  # the run's own data.root was a temporary folder
        f"data.root={tiny_source}",
        "data.image_size=32",
        "data.num_workers=0",
        "trainer.enable_progress_bar=false",
        "calibrate=true",  # fitted on the run's val split and stored in the checkpoint
        f"hydra.run.dir={tmp_path / 'ev'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    same_test_metrics(old_run, tmp_path / "ev", tolerance=1e-4, newer_keys=True)
    calibrated = load_classifier(old_run / "checkpoints" / "best.ckpt")
    metrics = json.loads((tmp_path / "ev" / "test_metrics.json").read_text())
    assert calibrated.calibration.temperature == metrics["test/temperature"]


def test_predict_with_an_old_layout_checkpoint(old_run, tiny_source, tmp_path):
    checkpoint = old_run / "checkpoints" / "best.ckpt"
    rows = pd.read_csv(tiny_source / "metadata.csv").groupby("family").head(2)
    paths = [tiny_source / p for p in rows["file_path"]]
    listing = tmp_path / "photos.csv"
    pd.DataFrame({"path": [str(p) for p in paths]}).to_csv(listing, index=False)
    result = run_module(
        tmp_path,
        "src.predict",
        f"ckpt_path={checkpoint}",
        f"inputs={listing}",
        "top_k=3",
        "num_workers=0",
        "device=cpu",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "has no calibration" in said and "calibrate=true" in said
    table = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert (table["status"] == "ok").all() and table["path"].tolist() == [str(p) for p in paths]
    assert (table["answer"] == table["top1"]).all() and table["set"].isna().all()
    model = load_classifier(checkpoint)
    probabilities = forward_probabilities(model, paths)
    top = probabilities.max(1)
    assert table["top1"].tolist() == [model.class_names[i] for i in top.indices.tolist()]
    assert table["p1"].to_numpy() == pytest.approx(top.values.numpy(), abs=1e-4)
    assert set(table["top2"]) | set(table["top3"]) <= set(model.class_names)


def test_export_an_old_layout_checkpoint(old_run, tmp_path):
    checkpoint = old_run / "checkpoints" / "best.ckpt"
    model_file, contract = exported(tmp_path, checkpoint)
    model = load_classifier(checkpoint)
    assert contract["class_names"] == model.class_names and contract["image_size"] == 32
    assert contract["mean"] == pytest.approx(list(model.data_config["mean"]))
    assert contract["calibrated"] is False  # no calibration: the plain logits
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(model_file))(x), model(x), atol=1e-4, rtol=0)


def test_a_new_checkpoint_holds_the_network_config(checkpoint):
    saved = torch.load(checkpoint, weights_only=True)["hyper_parameters"]
    assert saved["net"]["_target_"] == "src.models.baseline.BaselineCNN"
    assert "architecture" not in saved and "channels" not in saved
    assert load_classifier(checkpoint).hparams.net == saved["net"]


def test_a_checkpoint_of_a_pretrained_run_loads_without_its_weights(tmp_path):
    """A run that started from downloaded or local weights: loading reads neither."""
    net = {"_target_": "src.models.timm_net.TimmNet", "backbone": "test_efficientnet"}
    model = SpeciesClassifier({**net, "pretrained": False}, ["a", "b", "c"]).eval()
    weights = {"pretrained": True, "weights": str(tmp_path / "gone.safetensors")}
    hparams = {**model.hparams, "net": {**net, **weights}}
    path = tmp_path / "run.ckpt"
    torch.save({"hyper_parameters": hparams, "state_dict": model.state_dict()}, path)
    loaded = load_classifier(path)
    assert loaded.hparams.net["weights"] is None and loaded.hparams.net["pretrained"] is False
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_the_network_config_must_name_its_class():
    with pytest.raises(TypeError, match="net must be the network's config"):
        SpeciesClassifier("src.models.baseline.BaselineCNN", ["a", "b"])
