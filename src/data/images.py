"""Reading images safely: bad files become a named reason, never a PIL traceback.

Two steps share one set of rules. :func:`inspect_image` looks at a file cheaply
(existence, size, header, end-of-file marker) so that bad rows are found before
training starts; :func:`load_rgb` decodes one image to an RGB uint8 array and raises
:class:`BadImageError` with the same reasons if decoding still fails.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# PIL warns above this many pixels and refuses twice as many; the real data set holds one
# image of ~115.6 million pixels, so the default limit is PIL's refusal point.
DEFAULT_MAX_PIXELS = 2 * 89_478_485
NON_RGB_POLICIES = ("convert", "skip", "error")
TAIL_BYTES = 4096
# Markers that close a complete file; a truncated download lacks them.
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}


class BadImageError(RuntimeError):
    """An image cannot be used; ``reason`` is a short machine-readable kind."""

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{path}: {reason}{extra}. Set data.on_bad_image=skip to leave such images out "
            "(they are listed in bad_images.csv in the run folder)."
        )


@dataclass(frozen=True)
class ImageCheck:
    path: str
    reason: str | None  # None: usable
    mode: str | None = None
    width: int = 0
    height: int = 0


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open lazily (header only); size is checked against ``max_pixels`` before decoding."""
    if not path.exists():
        raise BadImageError(path, "missing")
    if path.stat().st_size == 0:
        raise BadImageError(path, "zero_bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as err:
        raise BadImageError(path, "too_large", str(err).split(".")[0]) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadImageError(path, "not_an_image", type(err).__name__) from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        image.close()
        raise BadImageError(
            path, "too_large", f"{pixels:,} pixels > data.max_image_pixels={max_pixels:,}"
        )
    return image


def _is_truncated(path: Path, image_format: str | None) -> bool:
    marker = END_MARKERS.get(image_format or "")
    if marker is None:
        return False
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - TAIL_BYTES))
        return marker not in handle.read()


def _is_non_rgb(image: Image.Image) -> bool:
    return image.mode != "RGB"


def inspect_image(
    path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, on_non_rgb: str = "convert"
) -> ImageCheck:
    """Check one file without decoding its pixels."""
    path = Path(path)
    try:
        with _open(path, max_pixels) as image:
            mode, width, height, image_format = image.mode, image.width, image.height, image.format
            if _is_truncated(path, image_format):
                raise BadImageError(path, "truncated")
            if on_non_rgb != "convert" and _is_non_rgb(image):
                raise BadImageError(path, "non_rgb", f"mode {mode}")
    except BadImageError as err:
        return ImageCheck(str(path), err.reason)
    return ImageCheck(str(path), None, mode, width, height)


def inspect_images(
    paths: Iterable[str | Path],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_non_rgb: str = "convert",
    threads: int = 8,
) -> list[ImageCheck]:
    """Check many files; threads because the work is mostly waiting on the disk."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda p: inspect_image(p, max_pixels, on_non_rgb), paths))


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit grey to 8 bits; PIL's own convert would clip everything above 255."""
    array = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
    grey = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: palette and alpha via RGBA, CMYK via PIL, deep grey rescaled."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return _sixteen_bit_to_rgb(image)
    if image.mode == "P" or image.mode in ("LA", "PA", "RGBA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(
    path: str | Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
    on_non_rgb: str = "convert",
) -> np.ndarray:
    """Decode an image to an ``(H, W, 3)`` uint8 array.

    ``draft_size`` lets libjpeg decode large JPEGs at 1/2, 1/4 or 1/8 scale while keeping
    both sides at least that large: the later resize sees nearly the same pixels, and a
    4000 px photo decodes several times faster.
    """
    path = Path(path)
    with _open(path, max_pixels) as image:
        if on_non_rgb != "convert" and _is_non_rgb(image):
            raise BadImageError(path, "non_rgb", f"mode {image.mode}")
        if draft_size and image.format == "JPEG" and image.mode in ("RGB", "L"):
            image.draft(image.mode, (draft_size, draft_size))
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise BadImageError(path, "truncated", str(err)) from None
        return np.asarray(to_rgb(image))
