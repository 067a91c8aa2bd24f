"""Reading images safely: bad files become a named reason, never a PIL traceback.

One rule decides whether a file is readable: :func:`load_rgb` decodes it fully (libjpeg
may work at reduced scale, which still runs the whole entropy-coded stream) and raises
:class:`BadImageError` with a reason. Everything that reads images (the training pre-scan
and dataset, the decoded cache, the CLIP filter, predict) goes through it;
:func:`inspect_image` is the same decode, turned into a verdict for the pre-scan.
"""

from __future__ import annotations

import warnings
import zlib
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
# Pre-scan decodes JPEGs at libjpeg's smallest scale (1/8): every byte is still parsed.
CHECK_DRAFT_SIZE = 1
# What PIL's decoders raise on damaged data (zlib for PNG, struct/EOF for cut chunks).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, zlib.error)


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


def _decode_reason(err: BaseException) -> str:
    """PIL says "image file is truncated" when the data stops early; anything else is damage."""
    truncated = isinstance(err, EOFError) or "truncated" in str(err).lower()
    return "truncated" if truncated else "corrupt"


def _is_non_rgb(image: Image.Image) -> bool:
    return image.mode != "RGB"


def inspect_image(
    path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, on_non_rgb: str = "convert"
) -> ImageCheck:
    """The verdict of :func:`load_rgb` on one file (decoded fully, at reduced scale if JPEG)."""
    path = Path(path)
    try:
        with _open(path, max_pixels) as image:
            mode, width, height = image.mode, image.width, image.height
        load_rgb(path, max_pixels, draft_size=CHECK_DRAFT_SIZE, on_non_rgb=on_non_rgb)
    except BadImageError as err:
        return ImageCheck(str(path), err.reason)
    return ImageCheck(str(path), None, mode, width, height)


def inspect_images(
    paths: Iterable[str | Path],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_non_rgb: str = "convert",
    threads: int | None = None,
) -> list[ImageCheck]:
    """Check many files in parallel: PIL decodes without holding the GIL, so threads suffice."""
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
        except DECODE_ERRORS as err:
            raise BadImageError(path, _decode_reason(err), str(err)) from None
        return np.asarray(to_rgb(image))
