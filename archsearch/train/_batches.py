"""Where training batches come from: any :class:`BatchSource` (an iterator of augmented uint8
batches per epoch), by default :class:`MemoryBatches` over an in-memory dataset, sharded over the
processes of a ``torchrun`` run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import torch

from ..data import Dataset
from ..evaluate import augment_batch

__all__ = ["BatchSource", "MemoryBatches"]


class BatchSource(Protocol):
    """What the training loop reads: ``steps_per_epoch`` batches per epoch, each ``(images,
    labels)`` with images uint8 ``[B, C, H, W]`` already augmented (crops, flips: normalisation
    and mixup are the loop's) and labels int64 ``[B]``, this process's share of the step.
    ``epoch(e)`` must give the same batches for the same ``e`` (resume continues from an epoch)."""

    @property
    def steps_per_epoch(self) -> int: ...

    def epoch(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...


class MemoryBatches:
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
        self.data, self.crop_padding, self.flip, self.seed = data, crop_padding, flip, seed
        self.rank, self.world = rank, world
        self.global_batch = batch_size * world
        self._steps = max(data.num_train // self.global_batch, 1)

    @property
    def steps_per_epoch(self) -> int:
        return self._steps

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
            share = slice(self.rank, None, self.world)
            yield images[share], self.data.train_labels[index][share]
