"""How a kind's weights are shared in a weight-sharing supernet (one-shot search).

Every kind (mixer, embedding, stem, family) carries one :class:`Share` as its ``share`` hook. It
sorts the kind's fields into four groups, and :mod:`archsearch.supernet` reads nothing else:

* ``nested``: sizes that nest (widths, heads that split a width, MLP ratio, expansion): one
  tensor at the largest size, and each member takes its leading slice (weight entanglement,
  AutoFormer, Chen et al. ICCV 2021; OFA's elastic width, Cai et al. ICLR 2020);
* ``kernels``: kernel sizes: the member's kernel is the centre of the largest (OFA's elastic
  kernel, without its kernel-transform matrices);
* ``reuse``: fields that change no weight (strides, ``kv_stride``, ``q_stride``, paddings,
  shifts, epsilons): the same tensors are applied at another stride;
* everything else is structural: one set of weights per value (SPOS choice blocks, Guo et al.
  ECCV 2020), the kind's name included.

``refuse`` names fields that cannot vary inside one supernet, with the reason; a space that has a
choice on one is refused when the supernet is compiled, naming the choice's line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Share"]


@dataclass(frozen=True)
class Share:
    """A kind's weight-sharing rule (see the module docstring for the four groups)."""

    nested: tuple[str, ...] = ()
    """Fields whose sizes nest: the leading slice of the largest."""
    kernels: tuple[str, ...] = ()
    """Kernel-size fields: the centre of the largest kernel."""
    reuse: tuple[str, ...] = ()
    """Fields that change no weight shape: the same weights at another value."""
    refuse: Mapping[str, str] = field(default_factory=dict)
    """Field -> why it cannot be a choice of a supernet."""
    centre: tuple[str, ...] = ()
    """Parameter names (the last component) of tables indexed by relative position, whose member
    slice is the centre on every axis that differs (BoTNet's relative logits)."""
    source: str = "SPOS choice blocks: one set of weights per option"
    """The paper or code the rule follows, for the docs."""

    def structural(self, fields: Any) -> tuple[str, ...]:
        """The fields of ``fields`` (names) that select a separate set of weights."""
        loose = {"kind", *self.nested, *self.kernels, *self.reuse}
        return tuple(f for f in fields if f not in loose)

    def direction(self, name: str) -> str | None:
        """For the covering members of a supernet: ``max`` for a nested or kernel field (its
        largest value has the largest weights), ``min`` for a reused one (a smaller stride keeps
        a larger map, and tables indexed by position grow with the map), ``None`` for a
        structural field (every value has its own weights)."""
        if name in self.nested or name in self.kernels:
            return "max"
        if name in self.reuse:
            return "min"
        return None

    def tag(self, kind: str, values: Mapping[str, Any]) -> str:
        """The name of the set of weights ``values`` (a kind's resolved fields) selects:
        ``attention(qkv=dw_bn,scale=dim,...)``."""
        parts = [f"{k}={_text(values[k])}" for k in self.structural(values)]
        return f"{kind}({','.join(parts)})"


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)
