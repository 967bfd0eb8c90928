"""Per-image transforms of a stream, on Pillow images: random-resized crop, flip, resize + center crop.

The training crop follows torchvision's ``RandomResizedCrop`` (``scale=(0.08, 1)``,
``ratio=(3/4, 4/3)``, ten tries, then a center crop clamped to the ratio range) and its bilinear,
antialiased resize; the random numbers come from a numpy generator, so torchvision cannot be
imported and is not needed. Validation resizes so the target is ``VAL_CROP_FRACTION`` of the
resized image and cuts the center (torchvision's ``Resize(256)`` + ``CenterCrop(224)`` at 224).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = [
    "RRC_RATIO",
    "RRC_SCALE",
    "VAL_CROP_FRACTION",
    "random_resized_crop_box",
    "to_chw",
    "train_transform",
    "val_transform",
]

RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)
VAL_CROP_FRACTION = 0.875
_TRIES = 10


def random_resized_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
) -> tuple[int, int, int, int]:
    """``(top, left, crop_height, crop_width)`` of a random crop of an ``height x width`` image, as
    torchvision's ``RandomResizedCrop.get_params``: an area fraction uniform in ``scale`` and an
    aspect ratio (width / height) log-uniform in ``ratio``, tried ten times; when no try fits, the
    center crop of the whole image clamped to the ratio range."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(_TRIES):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_transform(image: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Random-resized crop to ``size`` ``(height, width)`` (bilinear; Pillow antialiases when it
    shrinks), then a left-right mirror with probability 1/2."""
    top, left, h, w = random_resized_crop_box(image.height, image.width, rng)
    out = image.resize((size[1], size[0]), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out


def val_transform(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize (aspect kept) so that ``size`` is ``VAL_CROP_FRACTION`` of the result along the
    tighter side, then cut the center ``size`` ``(height, width)``."""
    th, tw = size
    factor = max(th / (VAL_CROP_FRACTION * image.height), tw / (VAL_CROP_FRACTION * image.width))
    rh, rw = max(th, round(image.height * factor)), max(tw, round(image.width * factor))
    top, left = (rh - th) // 2, (rw - tw) // 2
    scale_y, scale_x = image.height / rh, image.width / rw
    box = (left * scale_x, top * scale_y, (left + tw) * scale_x, (top + th) * scale_y)
    return image.resize((tw, th), Image.Resampling.BILINEAR, box=box)


def to_chw(image: Image.Image) -> np.ndarray:
    """A Pillow image (``L`` or ``RGB``) as a uint8 ``[C, H, W]`` array."""
    array = np.array(image, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on read-only
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))
