"""The in-memory dataset every evaluator reads, and the image conversions all loaders share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Issue, SpecError

__all__ = ["ChannelStats", "Dataset", "check_target", "convert_channels", "resize_images", "stratified_split"]

#: ITU-R 601 luma weights, as Pillow's ``convert("L")`` uses.
_LUMA = (0.299, 0.587, 0.114)
_CHUNK = 1024  # images resized at once, to bound the float copy


class ChannelStats:
    """``mean`` and ``std`` per channel of the training images, from the subclass's ``_stats``."""

    @property
    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)``; subclasses compute it once (a cached property)."""
        raise NotImplementedError

    @cached_property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the training images, on a 0..1 scale."""
        return self._stats[0]

    @cached_property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation of the training images, on a 0..1 scale (at least 1e-3)."""
        return self._stats[1]


@dataclass(frozen=True, eq=False)
class Dataset(ChannelStats):
    """Train and validation images, all of one size, as uint8 tensors in ``[N, C, H, W]``.

    Loaded datasets are cached and shared: treat the tensors as read-only.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    num_classes: int
    classes: tuple[str, ...]

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` of every image."""
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])

    @property
    def num_train(self) -> int:
        return int(self.train_images.shape[0])

    @property
    def num_val(self) -> int:
        return int(self.val_images.shape[0])

    @cached_property
    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        total = torch.zeros(self.channels, dtype=torch.float64)
        squares = torch.zeros(self.channels, dtype=torch.float64)
        for start in range(0, self.num_train, _CHUNK):
            chunk = self.train_images[start : start + _CHUNK].to(torch.float64) / 255.0
            total += chunk.sum(dim=(0, 2, 3))
            squares += chunk.square().sum(dim=(0, 2, 3))
        count = max(self.num_train, 1) * self.input_size[0] * self.input_size[1]
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)
        return tuple(mean.tolist()), tuple(std.tolist())

    def __repr__(self) -> str:
        c, (h, w) = self.channels, self.input_size
        return (
            f"Dataset({self.name!r}, train={self.num_train}, val={self.num_val}, "
            f"classes={self.num_classes}, images={c}x{h}x{w})"
        )


def check_target(input_size: Sequence[int], channels: int) -> tuple[tuple[int, int], int]:
    """Validate the requested image size and channels (they come from the model's ``input``)."""
    size = tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise SpecError(Issue(("input", "size"), "the image size must be two positive ints", value=size))
    if channels not in (1, 3) or isinstance(channels, bool):
        raise SpecError(Issue(("input", "channels"), "unsupported channel count", channels, "1 or 3"))
    return (size[0], size[1]), channels


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` to ``channels``: grey is replicated to RGB, RGB becomes luma."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        out = torch.empty((images.shape[0], 1, *images.shape[2:]), dtype=torch.uint8)
        weights = torch.tensor(_LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        for start in range(0, images.shape[0], _CHUNK):
            chunk = images[start : start + _CHUNK].to(torch.float32)
            out[start : start + _CHUNK] = (chunk * weights).sum(1, keepdim=True).round().clamp(0, 255)
        return out
    raise ValueError(f"cannot convert {have} channels to {channels}")


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 ``[N, C, H, W]`` to ``size`` (bilinear, antialiased when shrinking)."""
    if tuple(images.shape[2:]) == size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], *size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _CHUNK):
        chunk = images[start : start + _CHUNK].to(torch.float32)
        resized = F.interpolate(chunk, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[start : start + _CHUNK] = resized.round().clamp(0, 255)
    return out


def to_target(images: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Channels and size in the cheaper order: drop channels before resizing, add them after."""
    if images.shape[1] > channels:
        return resize_images(convert_channels(images, channels), size)
    return convert_channels(resize_images(images, size), channels)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``, both sorted: ``round(n * val_fraction)`` of each class's ``n``
    go to validation, at least one and leaving at least one (a single-image class stays in train)."""
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        n_val = 0 if len(members) < 2 else min(max(round(len(members) * val_fraction), 1), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
