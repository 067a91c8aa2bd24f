"""Files appear whole or not at all; readers survive the ones that did not; output problems
end in one sentence."""

import errno
import json
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from omegaconf import OmegaConf
from PIL import Image

from src.runs.cli import run_cli
from src.runs.files import (
    TEMP_SUFFIX,
    OutputError,
    output_error_behind,
    read_json,
    write_bytes,
    write_csv,
    write_json,
    write_text,
    write_with,
)


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if TEMP_SUFFIX in p.name]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "table.csv", "old\n")

    def half_then_fail(path: Path) -> None:
        path.write_text("ne")
        raise ValueError("the writer broke")

    with pytest.raises(ValueError, match="the writer broke"):  # not disguised as an output error
        write_with(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_a_full_disk_is_one_sentence_naming_the_file(tmp_path):
    target = write_bytes(tmp_path / "run" / "model.onnx", b"old")

    def disk_fills(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError) as caught:
        write_with(target, disk_fills)
    message = str(caught.value)
    assert str(target) in message and "full" in message
    assert "\n" not in message and message.count(". ") == 0 and message.endswith(".")
    assert target.read_bytes() == b"old"
    assert leftovers(target.parent) == []


def test_an_os_error_raised_while_a_c_writer_fails_is_found(tmp_path):
    """torch.save reports a full disk as a RuntimeError raised while handling the OSError."""

    def c_writer(path: Path) -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0") from None

    with pytest.raises(OutputError, match="full"):
        write_with(tmp_path / "last.ckpt", c_writer)
    assert leftovers(tmp_path) == []


def test_writes_land_whole_in_the_format_of_their_suffix(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    pd.testing.assert_frame_equal(pd.read_csv(write_csv(frame, tmp_path / "t.csv")), frame)
    assert json.loads(write_json(tmp_path / "m.json", {"b": 1, "a": [2]}).read_text()) == {
        "a": [2],
        "b": 1,
    }
    fig = plt.figure()
    # savefig picks the format from the name it is given: the temporary's must end in .png
    path = write_with(tmp_path / "figure.png", lambda temporary: fig.savefig(temporary))
    plt.close(fig)
    assert Image.open(path).format == "PNG"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe garbage", b"[1, 2]"])
def test_read_json_returns_the_default_with_one_warning(tmp_path, caplog, content):
    path = tmp_path / "run_status.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="src.runs.files"):
        assert read_json(path, {"status": "?"}, expect=dict) == {"status": "?"}
    assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()


def test_read_json_of_a_missing_file_is_the_default_quietly(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="src.runs.files"):
        assert read_json(tmp_path / "missing.json", {}) == {}
    assert caplog.records == []


def test_os_errors_from_any_library_become_the_output_sentence(capsys):
    def task(cfg):
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/mnt/ro/run/metrics.csv")
        except OSError as err:
            raise RuntimeError("a logger gave up") from err

    with pytest.raises(SystemExit) as caught:
        run_cli(task, OmegaConf.create({}))
    assert caught.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "error: Cannot write /mnt/ro/run/metrics.csv: /mnt/ro/run is not writable; "
        "choose a writable folder (e.g. hydra.run.dir=DIR)."
    ]
    assert output_error_behind(ValueError("unrelated")) is None
