from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.data.datamodule import BAD_IMAGES_FILE, BadImagesError, RareSpeciesDataModule
from src.data.images import DEFAULT_MAX_PIXELS, BadImageError, inspect_image, load_rgb
from src.data.transforms import ImagePipeline
from src.predict import PredictImages
from tests.helpers import damage_jpeg_body, garbage_idat_png, jpeg_with_trailing_bytes


def _jpeg(path: Path, size=(64, 48)) -> Path:
    """A noisy JPEG: large enough that cutting it in half keeps the header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, "JPEG", quality=95)
    return path


def damage(path: Path, kind: str) -> None:
    """Turn a good image file into one of the kinds found in real downloads."""
    if kind == "missing":
        path.unlink()
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "not_an_image":
        path.write_text("<html>404 not found</html>")
    else:
        raise ValueError(kind)


@pytest.mark.parametrize("kind", ["missing", "zero_bytes", "truncated", "not_an_image"])
def test_broken_files_get_a_named_reason(tmp_path, kind):
    path = _jpeg(tmp_path / "a.jpg")
    damage(path, kind)
    assert inspect_image(path).reason == kind
    with pytest.raises(BadImageError, match=f"a.jpg: {kind}.*on_bad_image=skip"):
        load_rgb(path)


def test_too_many_pixels(tmp_path):
    path = _jpeg(tmp_path / "big.jpg", size=(100, 100))
    assert inspect_image(path, max_pixels=5_000).reason == "too_large"
    with pytest.raises(BadImageError, match="10,000 pixels > data.max_image_pixels=5,000"):
        load_rgb(path, max_pixels=5_000)
    assert load_rgb(path, max_pixels=10_000).shape == (100, 100, 3)


def test_cmyk_is_converted_to_the_right_colour(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(path, "JPEG", quality=100)  # pure red
    assert inspect_image(path).reason is None
    pixel = load_rgb(path)[16, 16].astype(int)
    assert pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60


def test_palette_with_transparency_is_converted(tmp_path):
    path = tmp_path / "palette.jpg"  # PNG content under a .jpg name, as downloads sometimes are
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.save(path, "PNG", transparency=0)
    array = load_rgb(path)
    assert array.shape == (16, 16, 3) and tuple(array[0, 0]) == (10, 200, 30)


def test_sixteen_bit_grey_keeps_its_range(tmp_path):
    path = tmp_path / "deep.png"
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (8, 1))
    Image.fromarray(ramp).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")
    array = load_rgb(path)
    assert array.dtype == np.uint8 and array.shape == (8, 64, 3)
    assert array[0, 0, 0] == 0 and array[0, -1, 0] == 255 and 120 < array[0, 32, 0] < 140


def test_non_rgb_policy_error(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.new("L", (8, 8), 100).save(path, "JPEG")
    assert inspect_image(path, on_non_rgb="error").reason == "non_rgb"
    with pytest.raises(BadImageError, match="non_rgb"):
        load_rgb(path, on_non_rgb="error")
    assert load_rgb(path).shape == (8, 8, 3)


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path):
    path = _jpeg(tmp_path / "large.jpg", size=(800, 600))
    assert load_rgb(path).shape == (600, 800, 3)
    small = load_rgb(path, draft_size=100)
    assert small.shape[0] >= 100 and small.shape[1] >= 100 and small.shape[1] <= 200


@pytest.mark.parametrize("damaged", [garbage_idat_png, damage_jpeg_body])
def test_undecodable_data_with_an_intact_end_is_corrupt(tmp_path, damaged):
    path = damaged(_jpeg(tmp_path / "a.jpg"))
    assert inspect_image(path).reason == "corrupt"
    with pytest.raises(BadImageError, match="a.jpg: corrupt"):
        load_rgb(path)


def test_bytes_after_the_jpeg_end_marker_are_accepted_by_scan_and_predict(tmp_path):
    path = jpeg_with_trailing_bytes(_jpeg(tmp_path / "camera.jpg"))
    assert inspect_image(path).reason is None
    images = PredictImages([path], ImagePipeline(image_size=32), max_pixels=DEFAULT_MAX_PIXELS)
    image, problem = images[0]
    assert problem == "" and image.shape == (3, 32, 32)


KINDS = ["missing", "zero_bytes", "truncated", "not_an_image"]


def _damaged_datamodule(root: Path, tmp_path: Path, policy: str) -> RareSpeciesDataModule:
    frame = pd.read_csv(root / "metadata.csv")
    for kind, rel in zip(KINDS, frame["file_path"].iloc[::37]):
        damage(root / rel, kind)
    return RareSpeciesDataModule(
        root=str(root),
        image_size=32,
        num_workers=0,
        on_bad_image=policy,
        output_dir=str(tmp_path / "run"),
    )


def test_bad_images_stop_the_run_with_one_clear_error(tiny_root, tmp_path):
    dm = _damaged_datamodule(tiny_root, tmp_path, "error")
    with pytest.raises(BadImagesError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "4 of" in message and "data.on_bad_image=skip" in message
    for kind in KINDS:
        assert kind in message


def test_bad_images_skipped_are_listed(tiny_root, tmp_path):
    total = len(pd.read_csv(tiny_root / "metadata.csv"))
    dm = _damaged_datamodule(tiny_root, tmp_path, "skip")
    dm.setup("fit")
    listed = pd.read_csv(tmp_path / "run" / BAD_IMAGES_FILE)
    assert sorted(listed["reason"]) == sorted(KINDS)
    assert {"file_path", "split", "reason"} <= set(listed.columns)
    assert sum(len(d) for d in dm.datasets.values()) == total - 4
    kept = set().union(*(set(rows["file_path"]) for rows in dm.rows.values()))
    assert not kept & set(listed["file_path"])
    # the split itself (written next to the run) still holds every row
    written = sum(
        len(pd.read_csv(tmp_path / "run" / "split" / f"{s}.csv")) for s in ("train", "val", "test")
    )
    assert written == total
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].shape[1:] == (3, 32, 32)
