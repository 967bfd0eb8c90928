"""``load_dataset``: any data config to a :class:`Dataset` of one image size, cached in-process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from ._cifar import load_cifar
from ._config import CifarData, DataConfig, DigitsData, ImageFolderData
from ._dataset import Dataset, check_target, stratified_split, to_target
from ._imagefolder import load_imagefolder

__all__ = ["clear_dataset_cache", "load_dataset"]

_CACHE_SIZE = 4
_cache: OrderedDict[tuple[object, ...], Dataset] = OrderedDict()
_lock = threading.Lock()


def load_dataset(config: DataConfig, *, input_size: Sequence[int], channels: int) -> Dataset:
    """Load ``config`` with every image resized to ``input_size`` ``(height, width)`` (bilinear,
    antialiased) and converted to ``channels`` (1 or 3: grey is replicated, RGB becomes luma).

    The last few datasets loaded are kept: the same config, size and channels return the same
    object, so a search decodes its data once. Files changed on disk afterwards are not re-read
    (see :func:`clear_dataset_cache`). Raises :class:`~archsearch.SpecError` (path ``data.root``)
    for missing or unreadable data.
    """
    size, channels = check_target(input_size, channels)
    key = (config, size, channels)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        dataset = _load(config, size, channels)
        _cache[key] = dataset
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return dataset


def clear_dataset_cache() -> None:
    """Forget every cached dataset (to re-read changed files, or to free memory)."""
    with _lock:
        _cache.clear()


def _load(config: DataConfig, size: tuple[int, int], channels: int) -> Dataset:
    if isinstance(config, DigitsData):
        train_x, train_y, val_x, val_y, classes = _load_digits(config)
        name = "digits"
    elif isinstance(config, CifarData):
        train_x, train_y, val_x, val_y, classes = load_cifar(config)
        name = config.kind
    elif isinstance(config, ImageFolderData):
        train_x, train_y, val_x, val_y, classes = load_imagefolder(config, size, channels)
        name = f"imagefolder:{config.root}"
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not a data config: {config!r}")
    return Dataset(
        name=name,
        train_images=to_target(train_x, size, channels),
        train_labels=train_y,
        val_images=to_target(val_x, size, channels),
        val_labels=val_y,
        num_classes=len(classes),
        classes=classes,
    )


def _load_digits(
    config: DigitsData,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    from sklearn.datasets import load_digits  # ships its data; no download

    digits = load_digits()
    images = np.rint(np.asarray(digits.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    labels = np.asarray(digits.target, dtype=np.int64)
    train, val = stratified_split(labels, config.val_fraction, config.seed)
    x = torch.from_numpy(images).unsqueeze(1)  # [1797, 1, 8, 8]
    y = torch.from_numpy(labels)
    return x[train], y[train], x[val], y[val], tuple(str(i) for i in range(10))
