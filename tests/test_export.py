"""python -m src.export: ONNX and TorchScript equal PyTorch; a failed export keeps the old one."""

import errno
from pathlib import Path

import numpy as np
import pytest
import torch

from src.export import export
from src.models.classifier import load_classifier
from src.runs.files import OutputError
from tests.helpers import exported


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch(checkpoint, tmp_path, fmt):
    model_file, contract = exported(tmp_path, checkpoint, fmt)
    model = load_classifier(checkpoint)
    assert contract["class_names"] == model.class_names and contract["image_size"] == 32
    assert contract["mean"] == list(model.data_config["mean"])
    x = torch.randn(3, 3, 32, 32)
    expected = model(x).detach().numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(model_file))
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    else:
        got = torch.jit.load(str(model_file))(x).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_a_failed_export_leaves_the_previous_model(checkpoint, tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"the previous export")

    class DiskFills:
        def save(self, name: str) -> None:
            Path(name).write_bytes(b"half a model")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.jit, "trace", lambda *args, **kwargs: DiskFills())
    with pytest.raises(OutputError, match="is full"):
        export(load_classifier(checkpoint), 32, path, "torchscript")
    assert path.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
