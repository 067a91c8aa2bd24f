"""Export a trained model: ``python -m src.export ckpt_path=best.ckpt format=onnx|torchscript|hf``.

``format=hf`` writes a folder to share on a model hub (:mod:`src.models.model_folder`:
weights as safetensors, ``config.json``, a model card, the split), which predict, evaluate
and export take in place of a checkpoint.

Writes the model file and, beside it, ``<name>.preprocessing.json``: the contract a
deployment must follow (image size, resize interpolation, pre-processing variant, mean,
std, class names and phyla, and the calibration). The exported model takes normalised
``(N, 3, S, S)`` float images and returns logits, divided by the calibration's temperature
when the checkpoint has one (``"calibrated": true``), with the prediction-set and
out-of-scope thresholds predict uses.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

from src.errors import UserFacingError, check_choice
from src.evaluation.calibration import CALIBRATION_KEY, Calibration
from src.evaluation.model_card import model_card
from src.models.classifier import SpeciesClassifier, load_classifier
from src.models.model_folder import (
    CARD_FILE,
    CONFIG_FILE,
    DATAMODULE_KEY,
    SPLIT_DIR,
    WEIGHTS_FILE,
    write_model_folder,
)
from src.runs.cli import register_resolvers, run_cli
from src.runs.files import write_text, write_with

log = logging.getLogger(__name__)
register_resolvers()
FORMATS = ("onnx", "torchscript", "hf")


class TemperatureScaled(nn.Module):
    """The network with its logits divided by the calibration's temperature."""

    def __init__(self, net: nn.Module, temperature: float) -> None:
        super().__init__()
        self.net, self.temperature = net, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / self.temperature


def exported_network(model: SpeciesClassifier) -> nn.Module:
    """What is exported: the network, its logits calibrated when the model has a calibration."""
    if model.calibration is None:
        return model.net
    return TemperatureScaled(model.net, model.calibration.temperature)


def calibration_contract(calibration: Calibration | None) -> dict[str, Any]:
    """How a deployment reproduces predict's answers from the exported logits ``z``."""
    if calibration is None:
        return {
            "output": "logits (N, classes), not calibrated; softmax for probabilities",
            "calibrated": False,
        }
    score = {
        "energy": f"{calibration.temperature!r} * logsumexp(z)",
        "msp": "max(softmax(z))",
    }[calibration.out_of_scope]
    return {
        "output": "calibrated logits z (N, classes): softmax(z) gives calibrated probabilities",
        "calibrated": True,
        "temperature": calibration.temperature,
        "prediction_set": {
            "alpha": calibration.alpha,
            "threshold": min(calibration.set_threshold(), 1.0),  # 1: every class (few val images)
            "rule": "a class is in the set when softmax(z) >= 1 - threshold",
        },
        "out_of_scope": {
            "score": score,
            "threshold": max(calibration.scope_threshold(), -1e300),  # -1e300: none flagged
            "rule": "the image is out of scope when its score < threshold",
        },
    }


def contract(model: SpeciesClassifier, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "input": "float32 (N, 3, S, S), RGB, resized to S x S, /255, then (x - mean) / std",
        # what the training pipeline does (OpenCV); PIL's resize antialiases and differs
        "resize": "cv2.resize to (S, S) with the interpolation below, no antialiasing",
        "image_size": int(state.get("image_size", 224)),
        "preprocess": state.get("preprocess", "original"),
        **{key: model.data_config[key] for key in ("mean", "std", "interpolation")},
        **calibration_contract(model.calibration),
        "target": state.get("target", "family"),
        "class_names": model.class_names,
        "phylum": state.get("phylum", {}),
        "taxonomy": dict(model.hparams.get("taxonomy") or {}),
    }


def export(model: SpeciesClassifier, image_size: int, path: Path, fmt: str) -> Path:
    """Write ``model`` (in eval mode, on CPU) as ONNX or TorchScript to ``path``."""
    check_choice("format", fmt, FORMATS)
    model = model.cpu().eval()
    network = exported_network(model)
    # a batch of 2: torch.export fixes a dimension whose example size is 1, and the batch
    # size of transformer towers (open_clip's ViTs) would then be exported as a constant
    example = torch.zeros(2, 3, image_size, image_size)
    if fmt == "torchscript":
        traced = torch.jit.trace(network, example)
        return write_with(path, lambda temporary: traced.save(str(temporary)))
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as err:
        raise UserFacingError("ONNX export needs: pip install -e '.[export]'") from err
    return write_with(
        path,
        lambda temporary: torch.onnx.export(
            network,
            (example,),
            str(temporary),
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes={"x": {0: torch.export.Dim("n")}},
            external_data=False,
        ),
    )


def export_folder(model: SpeciesClassifier, ckpt_path: str | Path, folder: Path) -> Path:
    """``format=hf``: the model folder (weights, config, model card, split) to share."""
    source = Path(ckpt_path)
    run_dir = None if source.is_dir() else source.resolve().parent.parent
    state = model.datamodule_state
    calibration = None if model.calibration is None else model.calibration.to_dict()
    hparams = dict(model.hparams)
    card = model_card(hparams, state, calibration, model.run_config, run_dir)
    checkpoint = {
        "hyper_parameters": hparams,
        "state_dict": model.state_dict(),
        DATAMODULE_KEY: state,
        CALIBRATION_KEY: calibration,
        "run_config": model.run_config,
    }
    split = source / SPLIT_DIR if run_dir is None else run_dir / "split"
    return write_model_folder(folder, checkpoint, contract(model, state), card, split)


def run_export(cfg: DictConfig) -> Path:
    model = load_classifier(cfg.ckpt_path)
    state = model.datamodule_state
    if check_choice("format", cfg.format, FORMATS) == "hf":
        folder = export_folder(
            model, cfg.ckpt_path, Path(cfg.output or Path(cfg.paths.output_dir) / "model")
        )
        print(f"Wrote {folder} ({WEIGHTS_FILE}, {CONFIG_FILE}, {CARD_FILE}, {SPLIT_DIR}/)")
        return folder
    suffix = {"onnx": ".onnx", "torchscript": ".pt"}[cfg.format]
    path = Path(cfg.output or Path(cfg.paths.output_dir) / f"model{suffix}")
    export(model, int(state.get("image_size", 224)), path, cfg.format)
    side = path.with_suffix(".preprocessing.json")
    write_text(side, json.dumps(contract(model, state), indent=2) + "\n")
    print(f"Wrote {path} and {side}")
    return path


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    run_cli(run_export, cfg)


if __name__ == "__main__":
    main()
