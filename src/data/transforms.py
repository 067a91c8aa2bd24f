"""Pixel pipeline: resize, pre-processing variant, optional RandAugment, normalisation.

Which library does what (each where it is fastest on these images):
- PIL decodes (with libjpeg draft scaling for large JPEGs, see ``images.load_rgb``);
- albumentations (OpenCV) resizes the decoded array: on 2 cores it is faster than PIL
  or torchvision on the same uint8 images;
- torchvision v2 does the pre-processing variants, RandAugment (albumentations has none)
  and the normalisation, on uint8 tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import albumentations as A
import cv2
import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from src.errors import check_choice

PREPROCESS_VARIANTS = ("original", "contrast", "saturation", "grayscale")
# Factors of the original project's variants.
CONTRAST_FACTOR = 1.5
SATURATION_FACTOR = 1.5
INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}
# The baseline CNN rescales to [0, 1], as the original did.
UNIT_RANGE = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "interpolation": "bilinear"}

# RandAugment of the oversampled copies, as the original used it
RANDAUGMENT = {"num_ops": 2, "magnitude": 9}


def check_variant(variant: str) -> str:
    return check_choice("data.preprocess", variant, PREPROCESS_VARIANTS)


def apply_variant(image: torch.Tensor, variant: str) -> torch.Tensor:
    """Deterministic colour variant on a uint8 ``(3, H, W)`` tensor; grayscale keeps 3 channels."""
    if variant == "contrast":
        return F.adjust_contrast(image, CONTRAST_FACTOR)
    if variant == "saturation":
        return F.adjust_saturation(image, SATURATION_FACTOR)
    if variant == "grayscale":
        return F.rgb_to_grayscale(image, num_output_channels=3)
    return image


@dataclass
class ImagePipeline:
    """Turns a decoded ``(H, W, 3)`` uint8 array into a normalised float tensor.

    ``augment=True`` adds RandAugment; callers decide per item, so one pipeline serves
    original and oversampled copies of the same image.
    """

    image_size: int = 224
    variant: str = "original"
    mean: Sequence[float] = UNIT_RANGE["mean"]
    std: Sequence[float] = UNIT_RANGE["std"]
    interpolation: str = "bilinear"
    randaugment: dict = field(default_factory=lambda: dict(RANDAUGMENT))

    def __post_init__(self) -> None:
        check_variant(self.variant)
        check_choice("interpolation", self.interpolation, list(INTERPOLATIONS))
        self._resize = A.Resize(
            self.image_size, self.image_size, interpolation=INTERPOLATIONS[self.interpolation]
        )
        self._randaugment = v2.RandAugment(**self.randaugment)
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)

    def resize(self, array: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` -> ``(S, S, 3)`` uint8; what the decoded-image cache stores."""
        if array.shape[:2] == (self.image_size, self.image_size):
            return array  # already resized (read from the cache)
        return self._resize(image=array)["image"]

    def to_uint8(self, array: np.ndarray) -> torch.Tensor:
        """Resize and apply the deterministic variant: ``(3, S, S)`` uint8."""
        tensor = torch.from_numpy(np.ascontiguousarray(self.resize(array))).permute(2, 0, 1)
        return apply_variant(tensor, self.variant)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 ``(3, S, S)`` or ``(B, 3, S, S)``, on any device, to normalised floats."""
        mean, std = self._mean.to(image.device), self._std.to(image.device)
        return (image.float().div_(255.0) - mean) / std

    def finish_batch(self, images: torch.Tensor, augment: torch.Tensor) -> torch.Tensor:
        """RandAugment the flagged images of a uint8 batch and normalise it, on its device.

        ``data.augment_on=gpu`` runs this after the batch reached the GPU, so the CPU cores
        only read the cache (or decode) and the GPU does the pixel work. ``augment`` is a
        CPU tensor of flags: the random draws are made on the CPU, which never waits for
        the GPU.
        """
        flagged = torch.nonzero(augment.cpu()).flatten()
        if len(flagged):
            images = images.clone()
            rows = to_device(flagged, images.device)
            draws = draw_randaugment(self._randaugment, len(flagged))
            images[rows] = apply_randaugment(self._randaugment, images[rows], draws)
        return self.normalize(images)

    def __call__(self, array: np.ndarray, augment: bool = False) -> torch.Tensor:
        image = self.to_uint8(array)
        if augment:
            image = self._randaugment(image)
        return self.normalize(image)


# ---- RandAugment on whole batches ----------------------------------------------------------
# torchvision's RandAugment draws one set of ops per call; called per image on a GPU it
# launches a few kernels per image. Here every image still draws its own ops and signs, as
# v2.RandAugment would, but images that drew the same (op, sign) are transformed in one call:
# at most 2 x 14 calls per round for any batch size. Magnitudes are fixed per op, so a group
# shares everything but its pixels.
RandAugmentDraws = list[tuple[torch.Tensor, torch.Tensor]]  # per round: op index, negate


def draw_randaugment(randaugment: v2.RandAugment, n: int) -> RandAugmentDraws:
    """Independent op and sign draws for ``n`` images (CPU tensors, the global torch RNG)."""
    ops = len(randaugment._AUGMENTATION_SPACE)
    return [(torch.randint(ops, (n,)), torch.rand(n) <= 0.5) for _ in range(randaugment.num_ops)]


def apply_randaugment(
    randaugment: v2.RandAugment, images: torch.Tensor, draws: RandAugmentDraws
) -> torch.Tensor:
    """``images`` (uint8 ``(N, C, H, W)``, any device) transformed by their ``draws``."""
    space = randaugment._AUGMENTATION_SPACE
    names = list(space)
    height, width = images.shape[-2:]
    images = images.clone()
    for ops, negate in draws:
        for op in ops.unique().tolist():
            magnitudes_fn, signed = space[names[op]]
            magnitudes = magnitudes_fn(randaugment.num_magnitude_bins, height, width)
            magnitude = 0.0 if magnitudes is None else float(magnitudes[randaugment.magnitude])
            for sign in (-1.0, 1.0) if signed else (1.0,):
                chosen = (ops == op) & (negate == (sign < 0)) if signed else ops == op
                rows = to_device(torch.nonzero(chosen).flatten(), images.device)
                if len(rows):
                    images[rows] = randaugment._apply_image_or_video_transform(
                        images[rows],
                        names[op],
                        sign * magnitude,
                        interpolation=randaugment.interpolation,
                        fill=randaugment._fill,
                    )
    return images


def to_device(index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU index tensor on ``device`` without waiting for the GPU (pinned, non-blocking)."""
    if index.device == device or device.type != "cuda":
        return index.to(device)
    return index.pin_memory().to(device, non_blocking=True)
