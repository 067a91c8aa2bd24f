"""Checkpoints are written whole or not at all and read with one-sentence errors."""

import argparse
import errno
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from src.models.classifier import load_classifier
from src.runs.checkpoints import AtomicCheckpointIO, CheckpointError, read_checkpoint
from src.runs.cli import register_resolvers
from src.runs.files import TEMP_SUFFIX, OutputError
from tests.helpers import compose_config, one_error_line, run_module


def checkpoint(step: int) -> dict:
    return {"global_step": step, "state_dict": {"w": torch.full((256, 256), float(step))}}


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    last = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint(1), last)

    def disk_fills(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half of a zip archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_fills)
    with pytest.raises(OutputError) as caught:
        io.save_checkpoint(checkpoint(2), last)
    monkeypatch.undo()
    message = str(caught.value)
    assert str(last) in message and "full" in message and "\n" not in message
    assert read_checkpoint(last)["global_step"] == 1
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]
    assert not any(TEMP_SUFFIX in p.name for p in last.parent.iterdir())


@pytest.mark.parametrize("trainer", ["default", "cpu", "ddp"])
def test_every_trainer_config_saves_through_the_atomic_writer(tmp_path, trainer):
    register_resolvers()
    cfg = compose_config(
        "train", f"trainer={trainer}", "trainer.accelerator=cpu", f"paths.output_dir={tmp_path}"
    )
    built = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert isinstance(built.strategy.checkpoint_io, AtomicCheckpointIO)


def damaged(path: Path, kind: str) -> Path:
    whole = path.with_name("whole.ckpt")
    torch.save(checkpoint(3), whole)
    content = {
        "empty": b"",
        "truncated": whole.read_bytes()[: whole.stat().st_size // 2],
        "garbage": b"not a checkpoint\n" * 64,
    }[kind]
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "kind, says",
    [
        ("empty", "is empty (0 bytes)"),
        ("truncated", "is not a readable checkpoint"),
        ("garbage", "is not a readable checkpoint"),
    ],
)
def test_a_damaged_checkpoint_is_one_sentence(tmp_path, kind, says):
    path = damaged(tmp_path / "last.ckpt", kind)
    for mmap in (False, True):
        with pytest.raises(CheckpointError) as caught:
            read_checkpoint(path, mmap=mmap)
        message = str(caught.value)
        assert message.startswith(str(path)) and says in message and "\n" not in message


def test_pickled_code_is_refused_for_safety_without_suggesting_to_load_it(tmp_path):
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert "refused for safety" in message and "argparse.Namespace" in message
    assert "weights_only" not in message and "\n" not in message


def test_a_missing_checkpoint_names_the_setting(tmp_path):
    with pytest.raises(CheckpointError, match=r"ckpt_path=.*missing.ckpt does not exist"):
        read_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.parametrize(
    "module, kind, says",
    [
        ("src.predict", "unsafe", "was refused for safety"),
        ("src.export", "empty", "is empty (0 bytes)"),
        ("src.export", "garbage", "is not a readable checkpoint"),
    ],
)
def test_an_unusable_checkpoint_is_one_sentence(tiny_source, tmp_path, module, kind, says):
    path = tmp_path / "model.ckpt"
    if kind == "unsafe":  # loading it would unpickle (run) arbitrary code
        torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, path)
    else:
        path.write_bytes(b"" if kind == "empty" else b"not a checkpoint\n" * 64)
    extra = [f"inputs={tiny_source}"] if module == "src.predict" else []
    result = run_module(
        tmp_path, module, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'run'}", *extra
    )
    assert says in one_error_line(result)
    assert "weights_only" not in result.stdout + result.stderr  # never advise unpickling it


def test_a_state_dict_is_not_taken_for_a_classifier(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a checkpoint of this project's classifier"):
        load_classifier(path)
