"""Streamed data: images decoded per batch by DataLoader workers, and the batch iterator that the
in-memory :class:`Dataset` and the stream share.

Every training image's crop and flip come from a numpy generator seeded with ``(seed, epoch,
index)``, so a seed gives the same batches whatever the number of workers; the epoch's order comes
from a torch generator seeded with ``(seed, epoch)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
import torch.utils.data
from PIL import Image

from ._dataset import ChannelStats, Dataset
from ._imagefolder import open_image
from ._transforms import to_chw, train_transform, val_transform

__all__ = [
    "ArraySource",
    "Batches",
    "FileSource",
    "ImageSource",
    "StreamData",
    "SyntheticSource",
    "auto_workers",
    "batches",
    "epoch_seed",
    "source_paths",
]

Split = Literal["train", "val"]
_STATS_SAMPLE = 256  # images the stream's mean and std are estimated from


def epoch_seed(seed: int, epoch: int, index: int | None = None) -> int:
    """A 63-bit seed mixed from ``seed``, ``epoch`` and (optionally) a sample ``index``
    (numpy's SeedSequence, so nearby inputs give unrelated seeds)."""
    words = [seed, epoch] if index is None else [seed, epoch, index]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def auto_workers() -> int:
    """One worker per CPU core this process may use, but one, at most 16."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(0, min(16, cores - 1))


class ImageSource(Protocol):
    """Where a stream's images come from: ``len`` items, each opened as a Pillow image in ``mode``."""

    def __len__(self) -> int: ...

    def open(self, index: int, mode: str) -> Image.Image: ...


@dataclass(frozen=True)
class FileSource:
    """Image files, decoded with Pillow (errors are OSError naming the file)."""

    files: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    def open(self, index: int, mode: str) -> Image.Image:
        return open_image(self.files[index], mode)


@dataclass(frozen=True, eq=False)
class ArraySource:
    """Decoded uint8 images ``[N, C, H, W]`` held in memory at their own size (CIFAR's 32x32)."""

    images: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def open(self, index: int, mode: str) -> Image.Image:
        chw = self.images[index]
        image = Image.fromarray(chw[0] if chw.shape[0] == 1 else np.ascontiguousarray(chw.transpose(1, 2, 0)))
        return image if image.mode == mode else image.convert(mode)


@dataclass(frozen=True)
class SyntheticSource:
    """Random uint8 RGB images of ``size x size``, each from its own seed ``(seed, split, index)``."""

    count: int
    size: int
    seed: int
    split: int

    def __len__(self) -> int:
        return self.count

    def open(self, index: int, mode: str) -> Image.Image:
        rng = np.random.default_rng([self.seed, self.split, index])
        image = Image.fromarray(rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8))
        return image if mode == "RGB" else image.convert(mode)


class _Items(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Map-style dataset over ``(index, epoch)`` keys: one transformed uint8 ``[C, H, W]`` image
    and its label."""

    def __init__(
        self,
        source: ImageSource,
        labels: np.ndarray,
        size: tuple[int, int],
        channels: int,
        train: bool,
        seed: int,
    ):
        self.source, self.labels, self.size, self.train, self.seed = source, labels, size, train, seed
        self.mode = "RGB" if channels == 3 else "L"

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key
        image = self.source.open(index, self.mode)
        if self.train:
            image = train_transform(image, self.size, np.random.default_rng([self.seed, epoch, index]))
        else:
            image = val_transform(image, self.size)
        return torch.from_numpy(to_chw(image)), int(self.labels[index])


class _EpochSampler(torch.utils.data.Sampler[tuple[int, int]]):
    """``(index, epoch)`` keys of one epoch, shuffled by a generator seeded with ``(seed, epoch)``."""

    def __init__(self, count: int, epoch: int, seed: int, shuffle: bool):
        self.count, self.epoch, self.seed, self.shuffle = count, epoch, seed, shuffle

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.count, generator=generator).tolist()
        else:
            order = list(range(self.count))
        return ((i, self.epoch) for i in order)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # the decoding is Pillow's; torch threads would only contend


@dataclass(frozen=True, eq=False)
class StreamData(ChannelStats):
    """A data set read per batch: the same names as :class:`Dataset` (``num_classes``, ``classes``,
    ``channels``, ``input_size``, ``num_train``, ``num_val``, ``mean``, ``std``; the last two
    estimated from up to 256 training images) but no image tensors; :func:`batches` is how a
    trainer reads it."""

    name: str
    train_source: ImageSource
    train_labels: np.ndarray
    val_source: ImageSource
    val_labels: np.ndarray
    num_classes: int
    classes: tuple[str, ...]
    channels: int
    input_size: tuple[int, int]
    workers: int

    @property
    def num_train(self) -> int:
        return len(self.train_source)

    @property
    def num_val(self) -> int:
        return len(self.val_source)

    @cached_property
    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Estimated from up to 256 evenly spaced training images at the validation transform."""
        items = _Items(self.train_source, self.train_labels, self.input_size, self.channels, False, 0)
        picks = np.unique(np.linspace(0, self.num_train - 1, min(self.num_train, _STATS_SAMPLE)).astype(int))
        sample = torch.stack([items[(int(i), 0)][0] for i in picks]).to(torch.float64) / 255.0
        mean = sample.mean(dim=(0, 2, 3))
        std = sample.std(dim=(0, 2, 3), unbiased=False).clamp_min(1e-3)
        return tuple(mean.tolist()), tuple(std.tolist())

    def __repr__(self) -> str:
        c, (h, w) = self.channels, self.input_size
        return (
            f"StreamData({self.name!r}, train={self.num_train}, val={self.num_val}, "
            f"classes={self.num_classes}, images={c}x{h}x{w}, workers={self.workers})"
        )


@dataclass(frozen=True, eq=False)
class Batches:
    """One epoch of ``(images, labels)``: uint8 ``[B, C, H, W]`` and int64 ``[B]``, on ``device``.

    ``augmented`` says whether the images already carry the training augmentation (a stream's
    random-resized crop and flip); when false (in-memory data), the trainer augments them itself.
    ``len()`` is the number of batches.
    """

    data: Dataset | StreamData
    split: Split
    batch_size: int
    epoch: int
    seed: int
    device: torch.device
    drop_last: bool

    @property
    def augmented(self) -> bool:
        return isinstance(self.data, StreamData) and self.split == "train"

    @property
    def _count(self) -> int:
        return self.data.num_train if self.split == "train" else self.data.num_val

    def __len__(self) -> int:
        n, b = self._count, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if isinstance(self.data, StreamData):
            return self._stream(self.data)
        return self._memory(self.data)

    def _memory(self, data: Dataset) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        train = self.split == "train"
        images = data.train_images if train else data.val_images
        labels = data.train_labels if train else data.val_labels
        if train:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order: torch.Tensor | None = torch.randperm(len(labels), generator=generator)
        else:
            order = None
        pin = self.device.type == "cuda"
        for b in range(len(self)):
            window = slice(b * self.batch_size, (b + 1) * self.batch_size)
            x, y = (
                (images[window], labels[window])
                if order is None
                else (images[order[window]], labels[order[window]])
            )
            if pin:
                x, y = x.pin_memory(), y.pin_memory()
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _stream(self, data: StreamData) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        train = self.split == "train"
        source = data.train_source if train else data.val_source
        labels = data.train_labels if train else data.val_labels
        items = _Items(source, labels, data.input_size, data.channels, train, self.seed)
        loader = torch.utils.data.DataLoader(
            items,
            batch_size=self.batch_size,
            sampler=_EpochSampler(len(source), self.epoch, self.seed, shuffle=train),
            num_workers=data.workers,
            pin_memory=self.device.type == "cuda",
            drop_last=self.drop_last,
            worker_init_fn=_worker_init if data.workers else None,
            prefetch_factor=2 if data.workers else None,
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def batches(
    data: Dataset | StreamData,
    split: Split,
    batch_size: int,
    *,
    epoch: int = 0,
    seed: int = 0,
    device: torch.device | str | None = None,
    drop_last: bool | None = None,
) -> Batches:
    """One epoch of ``split`` (``train`` or ``val``) of in-memory or streamed data, in batches of
    ``batch_size``: an iterable of ``(uint8 [B, C, H, W], int64 [B])`` on ``device`` (default CPU;
    on CUDA the batches go through pinned memory with non-blocking copies).

    Training batches are shuffled by ``(seed, epoch)`` and drop the last partial batch unless
    ``drop_last=False``; validation batches are in order and keep it. In-memory training batches
    are not augmented (``Batches.augmented`` is false): the trainer crops and flips them on the
    device. Raises ValueError for a batch size below 1 or an unknown split.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return Batches(
        data,
        split,
        batch_size,
        epoch,
        seed,
        torch.device(device if device is not None else "cpu"),
        split == "train" if drop_last is None else drop_last,
    )


def source_paths(files: Sequence[Path]) -> FileSource:
    """A :class:`FileSource` of ``files`` (as strings, cheap to send to worker processes)."""
    return FileSource(tuple(str(f) for f in files))
