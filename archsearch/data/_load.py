"""``load_dataset``: any data config to a :class:`Dataset` of one image size, cached in-process."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import Issue, SpecError
from ._cifar import load_cifar
from ._config import CifarData, DataConfig, DigitsData, ImageFolderData, SyntheticData
from ._dataset import Dataset, check_target, stratified_split, to_target
from ._imagefolder import list_imagefolder, load_imagefolder
from ._stream import ArraySource, ImageSource, StreamData, SyntheticSource, auto_workers, source_paths

__all__ = ["cache_mode", "clear_dataset_cache", "decoded_bytes", "load_data", "load_dataset"]

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
    mode = cache_mode(config, size, channels)
    if mode == "stream":
        how = "cache: stream" if getattr(config, "cache", "") == "stream" else "cache: auto chose stream"
        raise SpecError(
            Issue(
                ("data", "cache"),
                f"{how} ({_show_bytes(decoded_bytes(config, size, channels))} decoded at "
                f"{size[0]}x{size[1]}), but this path reads the whole data set into memory: set "
                "cache: memory (or raise memory_budget_gib), or read it with load_data",
                value=getattr(config, "cache", None),
                allowed="memory",
            )
        )
    return _cached(config, size, channels)


def load_data(config: DataConfig, *, input_size: Sequence[int], channels: int) -> Dataset | StreamData:
    """The data of ``config`` at ``input_size`` ``(height, width)`` and ``channels``: an in-memory
    :class:`Dataset` (as :func:`load_dataset`, cached) or a :class:`StreamData` read per batch, as
    :func:`cache_mode` decides. Read either with :func:`archsearch.data.batches`.

    Raises SpecError (path ``data.root``) for missing or unreadable data; a stream finds an
    unreadable image only when it reads it (OSError naming the file, from the batch iterator).
    """
    size, channels = check_target(input_size, channels)
    if cache_mode(config, size, channels) == "memory":
        return _cached(config, size, channels)
    return _stream(config, size, channels)


def decoded_bytes(config: DataConfig, size: Sequence[int], channels: int) -> int:
    """Bytes of every image (train and validation) decoded as uint8 at ``size`` and ``channels``:
    what ``cache: memory`` holds. Counts files or records without decoding them."""
    count = _count(config)
    return count * channels * int(size[0]) * int(size[1])


def cache_mode(config: DataConfig, size: Sequence[int], channels: int) -> str:
    """``memory`` or ``stream``: the config's ``cache``, or for ``auto`` (and for digits, which
    always fit) ``memory`` when :func:`decoded_bytes` is at most ``memory_budget_gib`` GiB (default:
    half the physical memory), else ``stream``."""
    cache = getattr(config, "cache", "memory")
    if cache != "auto":
        return str(cache)
    budget = config.memory_budget_gib if not isinstance(config, DigitsData) else None
    limit = budget * 2**30 if budget is not None else _physical_memory() / 2
    return "memory" if decoded_bytes(config, size, channels) <= limit else "stream"


def _show_bytes(count: int) -> str:
    """``1.5 GiB``, ``12.0 MiB``, ``640 B``: the largest binary unit that keeps a leading digit."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _physical_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 8.0 * 2**30


def _count(config: DataConfig) -> int:
    if isinstance(config, DigitsData):
        return 1797
    if isinstance(config, SyntheticData):
        return config.num_train + config.num_val
    if isinstance(config, CifarData):
        train, test = (50_000, 10_000)
        return min(train, config.limit_train or train) + min(test, config.limit_val or test)
    train_files, _, val_files, _, _ = list_imagefolder(config)
    return len(train_files) + len(val_files)


def _cached(config: DataConfig, size: tuple[int, int], channels: int) -> Dataset:
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
    elif isinstance(config, SyntheticData):
        train_x, train_y, val_x, val_y, classes = _load_synthetic(config, size)
        name = "synthetic"
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


def _load_synthetic(
    config: SyntheticData, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Random RGB images at ``image_size`` (default ``size``) and random labels, from the seed."""
    generator = torch.Generator().manual_seed(config.seed)
    h, w = (config.image_size, config.image_size) if config.image_size else size
    out = []
    for count in (config.num_train, config.num_val):
        images = torch.randint(0, 256, (count, 3, h, w), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, config.num_classes, (count,), dtype=torch.int64, generator=generator)
        out += [images, labels]
    return out[0], out[1], out[2], out[3], tuple(str(i) for i in range(config.num_classes))


def _synthetic_labels(config: SyntheticData, split: int, count: int) -> np.ndarray:
    rng = np.random.default_rng([config.seed, split, 2**31])
    return rng.integers(0, config.num_classes, count, dtype=np.int64)


def _stream(config: DataConfig, size: tuple[int, int], channels: int) -> StreamData:
    """A stream over the config's images: files stay on disk; CIFAR's records (32x32) and synthetic
    images are kept or made at their own size and cropped per batch."""
    train_src: ImageSource
    val_src: ImageSource
    if isinstance(config, ImageFolderData):
        train_files, train_y, val_files, val_y, classes = list_imagefolder(config)
        train_src, val_src = source_paths(train_files), source_paths(val_files)
        train_labels, val_labels = np.asarray(train_y, np.int64), np.asarray(val_y, np.int64)
        name = f"imagefolder:{config.root}"
    elif isinstance(config, CifarData):
        train_x, train_t, val_x, val_t, classes = load_cifar(config)
        train_src, val_src = ArraySource(train_x.numpy()), ArraySource(val_x.numpy())
        train_labels, val_labels = train_t.numpy(), val_t.numpy()
        name = config.kind
    elif isinstance(config, SyntheticData):
        native = config.image_size or max(size)
        train_src = SyntheticSource(config.num_train, native, config.seed, 0)
        val_src = SyntheticSource(config.num_val, native, config.seed, 1)
        train_labels = _synthetic_labels(config, 0, config.num_train)
        val_labels = _synthetic_labels(config, 1, config.num_val)
        classes = tuple(str(i) for i in range(config.num_classes))
        name = "synthetic"
    else:  # digits: always in memory
        raise TypeError(f"{config.kind} data cannot be streamed")
    workers = auto_workers() if config.workers == "auto" else config.workers
    return StreamData(
        name=name,
        train_source=train_src,
        train_labels=train_labels,
        val_source=val_src,
        val_labels=val_labels,
        num_classes=len(classes),
        classes=classes,
        channels=channels,
        input_size=size,
        workers=workers,
    )
