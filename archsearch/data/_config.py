"""Data configs: typed, strict, frozen and discriminated on ``kind``, in the style of the spec schema.

A config only says where the images come from; the image size and channels are the model's, and
are passed to :func:`archsearch.data.load_dataset` separately.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..core import StrictModel

__all__ = ["CACHE_MODES", "CifarData", "DataConfig", "DigitsData", "ImageFolderData", "SyntheticData"]

Fraction = Annotated[float, Field(gt=0, lt=1)]
Seed = Annotated[int, Field(ge=0)]
Count = Annotated[int, Field(gt=0)]

#: The values of ``cache``: where the images live while a model trains on them.
CACHE_MODES = ("auto", "memory", "stream")


class _Cached(StrictModel):
    """The fields of the data kinds that can either be decoded into memory or streamed."""

    cache: Literal["auto", "memory", "stream"] = "auto"
    """``memory``: every image decoded once, at the model's size, and kept (the trainer crops and
    flips on the device). ``stream``: images decoded per batch by DataLoader worker processes with
    ImageNet-style augmentation (random-resized crop and flip at the model's size; validation resized
    and center-cropped), into pinned memory. ``auto``: ``memory`` when the decoded size (images x
    channels x height x width bytes, train and validation, at the model's size) is at most
    ``memory_budget_gib``, else ``stream``."""
    memory_budget_gib: Annotated[float, Field(gt=0)] | None = None
    """The limit ``auto`` compares the decoded size with, in GiB; ``null``: half the machine's
    physical memory."""
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    """DataLoader worker processes of a stream (0 decodes in the training process); ``auto``: one per
    CPU core but one, at most 16."""


class DigitsData(StrictModel):
    """scikit-learn's handwritten digits: 1797 real 8x8 grey images of 0-9, shipped with
    scikit-learn (no download). Pixel values 0..16 are scaled to 0..255."""

    kind: Literal["digits"] = "digits"
    val_fraction: Fraction = 0.2
    """Fraction of each class held out for validation (a fixed, stratified split)."""
    seed: Seed = 0
    """Seed of the train/validation split."""


class CifarData(_Cached):
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


class ImageFolderData(_Cached):
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


class SyntheticData(_Cached):
    """Random uint8 images with random labels, from a seed (no files): for benchmarks and tests of
    throughput, where accuracy means nothing. The same seed gives the same images and labels."""

    kind: Literal["synthetic"] = "synthetic"
    num_train: Count = 256
    """Training images."""
    num_val: Count = 64
    """Validation images."""
    num_classes: Annotated[int, Field(ge=2)] = 10
    """Labels are drawn uniformly from ``0 .. num_classes - 1``."""
    image_size: Count | None = None
    """Side of the square images as generated (they are then resized or cropped to the model's size
    like any other data); ``null``: the model's size."""
    seed: Seed = 0
    """Seed of the images and labels."""


DataConfig = Annotated[DigitsData | CifarData | ImageFolderData | SyntheticData, Field(discriminator="kind")]
