"""``features_only``: a compiled model without its head, returning the stage outputs (timm's
``features_only=True, out_indices=...`` convention), for detection and segmentation heads."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._model import ArchNet

__all__ = ["FeatureInfo", "FeatureNet"]


class FeatureInfo(list[dict[str, Any]]):
    """The chosen stages' ``{"num_chs", "reduction", "module", "index"}`` (timm's ``feature_info``),
    with timm's accessors."""

    def channels(self) -> list[int]:
        """Output channels of each returned feature map."""
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        """Stride of each returned map relative to the input image (pixels per map cell)."""
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        """The module each map is taken from (``stages.<i>``)."""
        return [f["module"] for f in self]


class FeatureNet(nn.Module):
    """An :class:`~archsearch.ArchNet` without its classifier head: ``(B, C, H, W)`` image -> the
    list of the chosen stages' output maps ``(B, channels_i, ceil(H / reduction_i), ...)`` in
    ``out_indices`` order (timm's ``features_only``; a token stage's class tokens are left out,
    its tokens returned as the map). Stages after the last chosen one are not built into it.

    ``out_indices``: stage indices, negative ones counted from the end (``-1``: the last stage),
    or an int ``k``: the last ``k`` stages (timm's ``_out_indices_as_tuple``); default every stage.
    Raises ``ValueError`` naming the value and the allowed range for an index out of it or
    repeated, or one that is not an integer (a bool, a string, a float).
    ``feature_info`` (:class:`FeatureInfo`) gives each map's channels and reduction.
    """

    def __init__(self, model: ArchNet, out_indices: Sequence[int] | int | None = None):
        super().__init__()
        n = len(model.stages)
        wanted = list(range(n)) if out_indices is None else _indices(out_indices, n)
        resolved = [i + n if i < 0 else i for i in wanted]
        bad = [w for w, r in zip(wanted, resolved, strict=True) if not 0 <= r < n]
        twice = [r for i, r in enumerate(resolved) if r in resolved[:i]]
        if bad or not resolved or twice:
            why = (
                f"{bad[0]} is not a stage of this model's {n}"
                if bad
                else f"stage {twice[0]} is chosen twice"
                if twice
                else "no stage chosen"
            )
            raise ValueError(
                f"out_indices {list(wanted)}: {why} (got {out_indices!r}); allowed: distinct indices "
                f"in {-n}..{n - 1} (negative ones count from the last stage)"
            )
        self.out_indices = tuple(resolved)
        self.plan = model.plan
        self.stem = model.stem
        self.stages = nn.ModuleList(list(model.stages)[: max(resolved) + 1])
        self.feature_info = FeatureInfo({**model.feature_info[i], "index": i} for i in resolved)
        self.input_size, self.fixed_size = model.input_size, model.fixed_size
        self._model = [model]  # kept out of the module tree: its head is not part of this net

    @property
    def dynamic_size(self) -> bool:
        return self._model[0].dynamic_size

    def set_dynamic_size(self, enabled: bool = True) -> None:
        """As :meth:`ArchNet.set_dynamic_size`."""
        self._model[0].set_dynamic_size(enabled)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        model = self._model[0]
        model.check_input_size(x)
        x = self.stem(x)
        cls = None
        maps: dict[int, torch.Tensor] = {}
        for i, stage in enumerate(self.stages):
            x, cls = stage(x, cls)
            maps[i] = x
        return [maps[i] for i in self.out_indices]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _indices(out_indices: Any, n: int) -> list[int]:
    """``out_indices`` as a list of ints: an int ``k`` is the last ``k`` of ``n`` stages (timm);
    ``ValueError`` naming the value for anything but an int or a sequence of ints."""
    if _is_int(out_indices):
        k = int(out_indices)
        if not 1 <= k <= n:
            raise ValueError(
                f"out_indices {k}: this model has {n} stages, and an int takes the last that many "
                f"(got {k}); allowed: 1 to {n}, or a sequence of stage indices"
            )
        return list(range(n - k, n))
    if (
        isinstance(out_indices, str | bytes)
        or not isinstance(out_indices, Sequence)
        or not all(_is_int(i) for i in out_indices)
    ):
        raise ValueError(
            f"out_indices must be stage indices (got {out_indices!r}); allowed: a sequence of ints in "
            f"{-n}..{n - 1} (negative ones count from the last stage), or an int k for the last k stages"
        )
    return [int(i) for i in out_indices]
