"""Data configs: typed, strict, frozen and discriminated on ``kind``, in the style of the spec schema.

A config only says where the images come from; the image size and channels are the model's, and
are passed to :func:`archsearch.data.load_dataset` separately.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..core import StrictModel

__all__ = ["CifarData", "DataConfig", "DigitsData", "ImageFolderData"]

Fraction = Annotated[float, Field(gt=0, lt=1)]
Seed = Annotated[int, Field(ge=0)]


class DigitsData(StrictModel):
    """scikit-learn's handwritten digits: 1797 real 8x8 grey images of 0-9, shipped with
    scikit-learn (no download). Pixel values 0..16 are scaled to 0..255."""

    kind: Literal["digits"] = "digits"
    val_fraction: Fraction = 0.2
    """Fraction of each class held out for validation (a fixed, stratified split)."""
    seed: Seed = 0
    """Seed of the train/validation split."""


class CifarData(StrictModel):
    """CIFAR-10 or CIFAR-100 from a local copy in the python pickle format: the official
    ``test_batch`` / ``test`` split is the validation set."""

    kind: Literal["cifar10", "cifar100"] = "cifar10"
    """``cifar10`` (``cifar-10-batches-py``) or ``cifar100`` (``cifar-100-python``, fine labels)."""
    root: str
    """The batches directory itself, or the directory that holds it."""
    limit_train: Annotated[int, Field(gt=0)] | None = None
    """Keep only the first N training images (the files are already shuffled)."""
    limit_val: Annotated[int, Field(gt=0)] | None = None
    """Keep only the first N test images."""


class ImageFolderData(StrictModel):
    """A folder of image files, one sub-folder per class: ``root/train/<class>/*`` and
    ``root/val/<class>/*`` when both exist, else ``root/<class>/*`` split by ``val_fraction``.
    Files with the usual image extensions (png, jpg, jpeg, bmp, gif, ppm, pgm, tif, tiff, webp) are
    read; others and hidden files are ignored. Classes are the sorted folder names."""

    kind: Literal["imagefolder"] = "imagefolder"
    root: str
    """The dataset directory."""
    val_fraction: Fraction = 0.2
    """Fraction of each class held out for validation in the flat layout (ignored with train/val)."""
    seed: Seed = 0
    """Seed of the stratified split in the flat layout."""
    limit_per_class: Annotated[int, Field(gt=0)] | None = None
    """Read at most N files per class (the first N by name; per split in the train/val layout)."""


DataConfig = Annotated[DigitsData | CifarData | ImageFolderData, Field(discriminator="kind")]
