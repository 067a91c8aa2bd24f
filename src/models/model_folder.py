"""A trained model as a folder to share on a model hub: ``python -m src.export format=hf``.

The folder holds ``model.safetensors`` (the weights), ``config.json`` (what rebuilds the
model: its hyper-parameters with the network's config, class names and taxonomy, the
pre-processing contract, the calibration, the training run's config), ``README.md`` (the
model card) and ``split/`` (the rows it was trained, validated and tested on). Neither file
can run code when loaded (no pickle), and only networks of this package are built from
``config.json``. ``config.json`` is written last: a folder without one is incomplete.
:func:`read_model_folder` gives what :func:`src.models.classifier.load_classifier` reads
from a checkpoint, so predict, evaluate and export take the folder in place of a ``.ckpt``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save

from src.evaluation.calibration import CALIBRATION_KEY
from src.runs.checkpoints import CheckpointError
from src.runs.files import write_text, write_with

WEIGHTS_FILE, CONFIG_FILE, CARD_FILE, SPLIT_DIR = (
    "model.safetensors",
    "config.json",
    "README.md",
    "split",
)
FORMAT = "rare-species-model"
FORMAT_VERSION = 1
DATAMODULE_KEY = "RareSpeciesDataModule"  # where a checkpoint keeps the data module's state


def write_model_folder(
    folder: str | Path,
    checkpoint: dict[str, Any],
    contract: dict[str, Any],
    card: str,
    split_dir: Path | None = None,
) -> Path:
    """Write the folder from a checkpoint's content (each file whole; ``config.json`` last)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {
        key: value.detach().cpu().contiguous().clone()
        for key, value in checkpoint["state_dict"].items()
    }
    # bytes, not save_file: the file then gets the user's umask like every other output
    write_with(folder / WEIGHTS_FILE, lambda temporary: temporary.write_bytes(save(weights)))
    write_text(folder / CARD_FILE, card)
    if split_dir is not None and split_dir.is_dir():
        (folder / SPLIT_DIR).mkdir(exist_ok=True)
        for part in sorted(split_dir.glob("*.csv")):
            write_with(folder / SPLIT_DIR / part.name, lambda t, p=part: shutil.copyfile(p, t))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hyper_parameters": checkpoint["hyper_parameters"],
        "preprocessing": contract,
        "datamodule_state": checkpoint.get(DATAMODULE_KEY, {}),
        "calibration": checkpoint.get(CALIBRATION_KEY),
        "run_config": checkpoint.get("run_config"),
    }
    write_text(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return folder


def read_model_folder(folder: str | Path) -> dict[str, Any]:
    """The folder's content shaped like a checkpoint's; a CheckpointError if unusable."""
    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{folder} is a folder without {CONFIG_FILE}: pass a .ckpt file, or a folder "
            "written by python -m src.export format=hf (config.json is written last, so an "
            "interrupted export has none; export again)."
        )
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not readable JSON ({err}).") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(
            f"{folder / CONFIG_FILE} is not the config of this project's model folder "
            f'(no "format": "{FORMAT}").'
        )
    try:
        state_dict = load_file(str(folder / WEIGHTS_FILE))
    except (OSError, SafetensorError) as err:
        raise CheckpointError(
            f"{folder / WEIGHTS_FILE} is missing or damaged ({err}); export the model again."
        ) from err
    checkpoint = {
        "hyper_parameters": config["hyper_parameters"],
        "state_dict": state_dict,
        DATAMODULE_KEY: config.get("datamodule_state") or {},
        "run_config": config.get("run_config"),
    }
    if config.get("calibration") is not None:
        checkpoint[CALIBRATION_KEY] = config["calibration"]
    return checkpoint
