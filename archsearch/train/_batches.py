"""Where training batches come from: any :class:`BatchSource` (an iterator of augmented uint8
batches per epoch): :class:`MemoryBatches` over an in-memory dataset or :class:`StreamBatches`
over a streamed one, sharded over the processes of a ``torchrun`` run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import torch

from ..data import Dataset, StreamData, batches
from ..evaluate import augment_batch

__all__ = ["BatchSource", "MemoryBatches", "StreamBatches", "batch_source"]


class BatchSource(Protocol):
    """What the training loop reads: ``steps_per_epoch`` batches per epoch, each ``(images,
    labels)`` with images uint8 ``[B, C, H, W]`` already augmented (crops, flips: normalisation
    and mixup are the loop's) and labels int64 ``[B]``, this process's share of the step.
    ``epoch(e)`` must give the same batches for the same ``e`` (resume continues from an epoch)."""

    @property
    def steps_per_epoch(self) -> int: ...

    def epoch(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...


class _Sharded:
    """Steps of ``batch_size * world`` images (the last partial step dropped), each split over the
    ``world`` processes: process ``rank`` takes every ``world``-th image."""

    def __init__(self, num_train: int, batch_size: int, seed: int, rank: int, world: int):
        self.seed, self.rank, self.world = seed, rank, world
        self.global_batch = batch_size * world
        self._steps = max(num_train // self.global_batch, 1)
        self.share = slice(rank, None, world)

    @property
    def steps_per_epoch(self) -> int:
        return self._steps


class MemoryBatches(_Sharded):
    """Batches of an in-memory :class:`~archsearch.data.Dataset`: each epoch a permutation drawn
    from ``(seed, epoch)``; each step the next ``batch_size * world`` images of it (the last
    partial step is dropped), cropped and flipped with a generator seeded from ``(seed, epoch,
    step)``, and split over the ``world`` processes (process ``rank`` takes every ``world``-th
    image, as PyTorch's ``DistributedSampler`` interleaves). The global batch of a step is the same
    for any number of processes, so the draws do not depend on ``world``."""

    def __init__(
        self,
        data: Dataset,
        *,
        batch_size: int,
        crop_padding: int,
        flip: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ):
        super().__init__(data.num_train, batch_size, seed, rank, world)
        self.data, self.crop_padding, self.flip = data, crop_padding, flip

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(
            self.data.num_train, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch)
        )
        for i in range(self._steps):
            index = order[i * self.global_batch : (i + 1) * self.global_batch]
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 100_003 + i)
            images = augment_batch(
                self.data.train_images[index], padding=self.crop_padding, flip=self.flip, generator=generator
            )
            yield images[self.share], self.data.train_labels[index][self.share]


class StreamBatches(_Sharded):
    """Batches of a :class:`~archsearch.data.StreamData` (image files decoded per batch by
    DataLoader workers, with the stream's random-resized crop and flip): each step the next
    ``batch_size * world`` images of the epoch's shuffle by ``(seed, epoch)``, split over the
    ``world`` processes as :class:`MemoryBatches` splits them. Every process decodes the whole
    global batch and keeps its share (simple and the same for any ``world``; a per-process sampler
    would decode ``world`` times less)."""

    def __init__(self, data: StreamData, *, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        super().__init__(data.num_train, batch_size, seed, rank, world)
        self.data = data

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in batches(self.data, "train", self.global_batch, epoch=epoch, seed=self.seed):
            yield images[self.share], labels[self.share]


def batch_source(
    data: Dataset | StreamData,
    *,
    batch_size: int,
    crop_padding: int,
    flip: bool,
    seed: int,
    rank: int = 0,
    world: int = 1,
) -> BatchSource:
    """:class:`StreamBatches` for streamed data (its own crop and flip; ``crop_padding`` and
    ``flip`` do not apply), :class:`MemoryBatches` for in-memory data."""
    if isinstance(data, StreamData):
        return StreamBatches(data, batch_size=batch_size, seed=seed, rank=rank, world=world)
    return MemoryBatches(
        data, batch_size=batch_size, crop_padding=crop_padding, flip=flip, seed=seed, rank=rank, world=world
    )
