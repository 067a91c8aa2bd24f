"""open_clip image towers as backbones (model=openclip|bioclip|clip), tested with the tiny
random ``tiny-clip`` architecture: the real training command, the feature cache, freeze
policies, image size, weights files, precision, predict and export, and checkpoints that
load without the hub."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from src.errors import ConfigError
from src.models.classifier import SpeciesClassifier, load_classifier
from src.models.clip import ClipSpec, ClipUnavailableError, load_clip
from src.models.clip_net import ClipNet
from src.models.metrics import TEST_KEYS
from tests.helpers import (
    ROOT,
    TINY_DATA,
    cache_env,
    compose_config,
    one_error_line,
    run_module,
    tiny_trainer,
    trainable,
)
from tests.helpers import tiny_datamodule as datamodule

NAMES = ["a", "b", "c"]
TRAIN = [
    *TINY_DATA,
    "model=openclip",
    "model.net.name=tiny-clip",
    "data.image_size=32",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
]


def clip_net(clip_configs: Path, **kwargs) -> ClipNet:
    return ClipNet(len(NAMES), "tiny-clip", config_dir=str(clip_configs), **kwargs)


def run_offline(tmp_path: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m module args`` with the Hugging Face hub off and an empty hub cache."""
    env = {**cache_env(tmp_path), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def no_hub(monkeypatch):
    """Every way open_clip reaches the Hugging Face hub fails the test."""
    import huggingface_hub
    import open_clip.factory
    import open_clip.pretrained

    def hub(*args, **kwargs):
        raise AssertionError(f"the hub was called: {args}")

    for module, name in [
        (huggingface_hub, "hf_hub_download"),
        (open_clip.pretrained, "hf_hub_download"),
        (open_clip.pretrained, "download_pretrained_from_hf"),
        (open_clip.factory, "download_pretrained_from_hf"),
        (open_clip.factory, "download_pretrained"),
        (open_clip.factory, "_get_hf_config"),
    ]:
        monkeypatch.setattr(module, name, hub)


@pytest.fixture(scope="module")
def clip_run(clip_configs, tmp_path_factory) -> Path:
    """``python -m src.train model=openclip model.net.name=tiny-clip``, 1 epoch: its folder."""
    tmp = tmp_path_factory.mktemp("clip_train")
    result = run_module(
        tmp,
        "src.train",
        *TRAIN,
        f"model.net.config_dir={clip_configs}",
        f"hydra.run.dir={tmp / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run"


@pytest.fixture(scope="module")
def hub_checkpoint(clip_run, tmp_path_factory) -> Path:
    """The trained checkpoint as a ``hf-hub:`` model's would be, its config folder gone."""
    checkpoint = torch.load(clip_run / "checkpoints" / "best.ckpt", weights_only=True)
    net = checkpoint["hyper_parameters"]["net"]
    net.update(name="hf-hub:nobody/tiny-clip", config_dir="/no/such/folder")
    path = tmp_path_factory.mktemp("hub_ckpt") / "hub.ckpt"
    torch.save(checkpoint, path)
    return path


def test_the_model_configs():
    for name, (net, pretrained) in {
        "bioclip": ("hf-hub:imageomics/bioclip", None),
        "clip": ("ViT-B-16-quickgelu", "openai"),
    }.items():
        cfg = compose_config("train", f"model={name}").model.net
        assert cfg._target_ == "src.models.clip_net.ClipNet"
        assert (cfg.name, cfg.pretrained, cfg.freeze) == (net, pretrained, "all")


def test_train_one_epoch_with_the_real_command(clip_run):
    metrics = json.loads((clip_run / "test_metrics.json").read_text())
    assert set(metrics) >= set(TEST_KEYS)
    checkpoint = torch.load(clip_run / "checkpoints" / "best.ckpt", weights_only=True)
    net = checkpoint["hyper_parameters"]["net"]
    assert net["_target_"] == "src.models.clip_net.ClipNet" and net["name"] == "tiny-clip"
    # the architecture travels with the checkpoint; its text tower is a stub
    assert net["open_clip_config"]["model_cfg"]["vision_cfg"]["layers"] == 2
    assert net["open_clip_config"]["model_cfg"]["text_cfg"]["width"] == 8
    keys = list(checkpoint["state_dict"])
    assert keys and all(k.startswith(("net.backbone.", "net.head.")) for k in keys), keys[:5]
    assert not [k for k in keys if "token_embedding" in k or "logit_scale" in k]


def test_a_checkpoint_loads_without_the_hub_or_its_config_folder(clip_run, hub_checkpoint, no_hub):
    trained = load_classifier(clip_run / "checkpoints" / "best.ckpt")
    loaded = load_classifier(hub_checkpoint)
    assert loaded.hparams.net["pretrained"] is False and loaded.hparams.net["weights"] is None
    assert loaded.data_config == trained.data_config
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), trained(x))


def test_predict_with_a_hub_models_checkpoint_offline(hub_checkpoint, tiny_source, tmp_path):
    frame = pd.read_csv(tiny_source / "metadata.csv").head(4)
    listing = tmp_path / "photos.csv"
    pd.DataFrame({"path": [str(tiny_source / p) for p in frame["file_path"]]}).to_csv(listing)
    result = run_offline(
        tmp_path,
        "src.predict",
        f"ckpt_path={hub_checkpoint}",
        f"inputs={listing}",
        f"output={tmp_path / 'p.csv'}",
        "num_workers=0",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 4 and (table["status"] == "ok").all()
    assert set(table["top1"]) <= set(load_classifier(hub_checkpoint).class_names)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch(clip_run, tmp_path, fmt):
    from src.export import run_export
    from src.runs.cli import register_resolvers

    register_resolvers()
    ckpt = clip_run / "checkpoints" / "best.ckpt"
    output = tmp_path / ("model.onnx" if fmt == "onnx" else "model.pt")
    run_export(compose_config("export", f"ckpt_path={ckpt}", f"format={fmt}", f"output={output}"))
    contract = json.loads(output.with_suffix(".preprocessing.json").read_text())
    model = load_classifier(ckpt)
    assert contract["image_size"] == 32 and contract["interpolation"] == "bicubic"
    assert contract["mean"] == pytest.approx(model.data_config["mean"])
    x = torch.randn(3, 3, 32, 32)
    assert contract["calibrated"] and contract["temperature"] == model.calibration.temperature
    expected = (model(x) / model.calibration.temperature).detach().numpy()  # calibrated logits
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output))
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    else:
        got = torch.jit.load(str(output))(x).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def train_in_process(tmp_path: Path, clip_configs: Path, name: str, *overrides: str) -> dict:
    from src.runs.cli import register_resolvers
    from src.train import train

    register_resolvers()
    cfg = compose_config(
        "train",
        *TRAIN,
        f"model.net.config_dir={clip_configs}",
        "trainer.max_epochs=2",
        "trainer.limit_test_batches=null",
        "logger=none",
        f"paths.output_dir={tmp_path / name}",
        *overrides,
    )
    train(cfg)
    return json.loads((tmp_path / name / "test_metrics.json").read_text())


def test_feature_cache_trains_the_same_model(tmp_path, clip_configs, caplog):
    images = train_in_process(tmp_path, clip_configs, "images")
    with caplog.at_level("INFO"):
        features = train_in_process(tmp_path, clip_configs, "features", "data.feature_cache=true")
    assert "Backbone features cached" in caplog.text
    for key, value in images.items():
        assert features[key] == pytest.approx(value, abs=1e-4, nan_ok=True), key


def test_a_wrong_image_size_is_one_sentence_before_training(tmp_path, clip_configs):
    from src.runs.cli import register_resolvers
    from src.train import build

    register_resolvers()
    cfg = compose_config(
        "train",
        *TRAIN,
        f"model.net.config_dir={clip_configs}",
        "data.image_size=48",
        f"paths.output_dir={tmp_path / 'run'}",
    )
    with pytest.raises(ConfigError, match=r"takes 32x32 images, but data.image_size=48: set data"):
        build(cfg)


def test_freeze_all_partial_none(clip_configs):
    frozen = clip_net(clip_configs, freeze="all").train()
    assert trainable(frozen.backbone) == 0 and trainable(frozen) == trainable(frozen.head) > 0
    assert not any(m.training for m in frozen.backbone.modules()) and frozen.head.training

    partial = clip_net(clip_configs, freeze="partial", unfreeze_last=1).train()
    tower = partial.backbone
    blocks = list(tower.transformer.resblocks)
    tail = sum(p.numel() for p in tower.ln_post.parameters()) + tower.proj.numel()
    assert trainable(tower) == sum(p.numel() for p in blocks[-1].parameters()) + tail
    assert trainable(blocks[0]) == 0 and not tower.conv1.weight.requires_grad
    assert not tower.positional_embedding.requires_grad
    before = [tower.conv1, tower.ln_pre, tower.patch_dropout, blocks[0]]
    assert not any(m.training for part in before for m in part.modules())
    assert all(m.training for m in blocks[-1].modules()) and tower.ln_post.training

    tail_only = clip_net(clip_configs, freeze="partial", unfreeze_last=0)
    assert trainable(tail_only.backbone) == tail
    everything = clip_net(clip_configs, freeze="partial", unfreeze_last=5)  # > 2 blocks
    all_blocks = sum(p.numel() for p in everything.backbone.transformer.resblocks.parameters())
    assert trainable(everything.backbone) == all_blocks + tail
    assert not everything.backbone.conv1.weight.requires_grad

    free = clip_net(clip_configs, freeze="none").train()
    assert trainable(free) == sum(p.numel() for p in free.parameters())
    assert all(m.training for m in free.backbone.modules())


def test_frozen_blocks_stay_in_eval_through_a_fit_in_bf16(tiny_root, tmp_path, clip_configs):
    """Lightning's fit in bf16 mixed precision (CPU autocast here; GPUs choose it too)."""
    import pytorch_lightning as pl

    dm = datamodule(tiny_root, tmp_path, batch_size=16)
    dm.setup("fit")
    net = {
        "_target_": "src.models.clip_net.ClipNet",
        "name": "tiny-clip",
        "config_dir": str(clip_configs),
        "freeze": "partial",
        "unfreeze_last": 1,
    }
    model = SpeciesClassifier(net, dm.class_names, backbone_lr_mult=0.1)
    dm.use_data_config(model.data_config)
    groups = model.parameter_groups(1e-3)
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(1e-4)
    tower = model.net.backbone
    frozen = [tower.conv1, tower.ln_pre, tower.transformer.resblocks[0]]
    first_block = {k: v.clone() for k, v in tower.transformer.resblocks[0].state_dict().items()}

    class Spy(pl.Callback):
        modes: list[bool] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, *args):
            assert torch.isfinite(outputs["loss"])
            self.modes.append(any(m.training for part in frozen for m in part.modules()))

    tiny_trainer(max_epochs=2, precision="bf16-mixed", callbacks=[Spy()]).fit(model, datamodule=dm)
    assert Spy.modes and not any(Spy.modes)
    after = tower.transformer.resblocks[0].state_dict()
    assert all(torch.equal(first_block[k], after[k]) for k in first_block)


def test_towers_without_blocks_fall_back_to_the_layer_rule(tmp_path):
    """A ModifiedResNet tower (CLIP RN50's kind): the last N layers, BatchNorm frozen."""
    from torch.nn.modules.batchnorm import _BatchNorm

    from src.models.freeze import parameterised_layers

    resnet = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "head_width": 8},
        "text_cfg": {"context_length": 4, "vocab_size": 8, "width": 8, "heads": 1, "layers": 1},
    }
    (tmp_path / "tiny-rn.json").write_text(json.dumps(resnet))
    net = ClipNet(3, "tiny-rn", config_dir=str(tmp_path), freeze="partial", unfreeze_last=2)
    layers = [m for m in parameterised_layers(net.backbone) if not isinstance(m, _BatchNorm)]
    assert net.trainable_parts == layers[-2:]
    assert trainable(net.backbone) == sum(
        p.numel() for m in layers[-2:] for p in m.parameters(recurse=False)
    )
    net.train()
    assert not any(m.training for m in net.backbone.modules() if isinstance(m, _BatchNorm))
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 3) and net.input_size == (64, 64)


def tiny_clip_weights(clip_configs: Path, folder: Path) -> tuple[Path, dict]:
    """A random tiny-clip model saved as open_clip weights: the file and the tower's state."""
    import open_clip

    open_clip.add_model_config(clip_configs)
    torch.manual_seed(3)
    model = open_clip.create_model("tiny-clip")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model.visual.state_dict()


def test_a_local_weights_file_is_loaded(clip_configs, tmp_path, no_hub):
    path, tower = tiny_clip_weights(clip_configs, tmp_path)
    net = clip_net(clip_configs, weights=str(path))
    for key, value in tower.items():
        assert torch.equal(net.backbone.state_dict()[key], value), key
    with pytest.raises(ClipUnavailableError, match=r"model.net.weights=.*does not exist"):
        clip_net(clip_configs, weights=str(tmp_path / "missing.safetensors"))
    other = tmp_path / "other.safetensors"
    save_file({"something.else": torch.zeros(2)}, str(other))
    with pytest.raises(ClipUnavailableError, match=r"other.safetensors could not be loaded into"):
        clip_net(clip_configs, weights=str(other))


def hub_folder(clip_configs: Path, folder: Path) -> tuple[Path, dict]:
    """What ``hf download`` gives for a hub model: weights and its config."""
    from tests.conftest import TINY_CLIP

    path, tower = tiny_clip_weights(clip_configs, folder)
    preprocess = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"}
    config = {"model_cfg": TINY_CLIP, "preprocess_cfg": preprocess}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return path, tower


def test_a_hub_models_downloaded_folder_loads_offline(clip_configs, tmp_path, no_hub):
    """``model.net.weights`` = the weights file of a hub folder, its config beside it."""
    path, tower = hub_folder(clip_configs, tmp_path / "hub")
    net = ClipNet(3, "hf-hub:nobody/tiny-clip", weights=str(path))
    for key, value in tower.items():
        assert torch.equal(net.backbone.state_dict()[key], value), key
    assert net.data_config == {
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "interpolation": "bilinear",
    }
    # the filter and the baselines load it the same way, with its tokenizer
    model, preprocess, tokenizer = load_clip(
        ClipSpec("hf-hub:nobody/tiny-clip", None, weights=str(path))
    )
    assert torch.equal(model.visual.conv1.weight, tower["conv1.weight"])
    assert tokenizer(["a photo of a bird"]).shape[0] == 1
    alone = tmp_path / "alone" / path.name
    alone.parent.mkdir()
    alone.write_bytes(path.read_bytes())
    with pytest.raises(ClipUnavailableError, match="open_clip_config.json: download the whole"):
        ClipNet(3, "hf-hub:nobody/tiny-clip", weights=str(alone))


def test_offline_bioclip_without_weights_is_one_sentence(tmp_path):
    result = run_offline(
        tmp_path, "src.train", *TINY_DATA, "model=bioclip", f"hydra.run.dir={tmp_path / 'run'}"
    )
    line = one_error_line(result)
    assert "hf-hub:imageomics/bioclip could not be downloaded" in line
    assert "model.net.weights=PATH" in line


def test_unknown_names_and_untagged_pretrained_are_one_sentence():
    with pytest.raises(ClipUnavailableError, match="no model 'ViT-B-17'; similar: ViT-B-16"):
        ClipNet(3, "ViT-B-17")
    with pytest.raises(ClipUnavailableError, match="pretrained=true does not say which"):
        ClipNet(3, "ViT-B-16", pretrained=True)
