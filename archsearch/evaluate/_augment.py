"""Batched augmentation and normalisation in plain torch, on whatever device the batch is on.

Augmentation works on the uint8 images, as torchvision does on PIL images: the crop pads with
zeros (black) *before* normalisation. Random numbers come from a CPU generator, so a seed gives the
same augmentation on every device; only the small offset and flip tensors are moved.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["augment_batch", "normalize_images", "random_crop", "random_flip"]


def random_crop(
    images: torch.Tensor, padding: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pad ``[N, C, H, W]`` with ``padding`` zeros on each side and cut an ``H x W`` window at a
    random offset per sample, with one gather (no loop over samples). ``padding=0`` is the identity."""
    if padding == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(images.device)
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)  # [N, H]
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each sample left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


def augment_batch(
    images: torch.Tensor, *, padding: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop with zero padding, then (if ``flip``) a random horizontal flip."""
    images = random_crop(images, padding, generator=generator)
    return random_flip(images, generator=generator) if flip else images


def normalize_images(
    images: torch.Tensor,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` to float ``(x / 255 - mean) / std`` per channel (mean and std on a
    0..1 scale; the trainer uses the training set's own, :attr:`Dataset.mean` / ``std``)."""
    mean_t = torch.as_tensor(mean, dtype=dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=dtype, device=images.device).view(1, -1, 1, 1)
    return (images.to(dtype) / 255.0 - mean_t) / std_t
