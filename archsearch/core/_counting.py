"""Counting parameters, multiply-accumulates and activations of layers, no module built.

The conventions are fvcore's (MACs, what papers call FLOPs), so analytic and traced counts agree:
parameters exactly, MACs to rounding. ``activations`` counts the output elements of every op that
carries MACs (a proxy for activation memory).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cost"]


@dataclass(slots=True)
class Cost:
    """Parameters, multiply-accumulates and activation elements (per image) of a part.

    The methods add one layer each; sizes are channels and output map sides in pixels/tokens.
    """

    params: int = 0
    macs: int = 0
    activations: int = 0

    def op(self, macs: int, out: int, params: int = 0) -> None:
        """Add ``macs`` multiply-accumulates producing ``out`` elements, with ``params`` weights."""
        self.params += params
        self.macs += macs
        if macs:
            self.activations += out

    def __iadd__(self, other: Cost) -> Cost:
        self.params += other.params
        self.macs += other.macs
        self.activations += other.activations
        return self

    def conv(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        h_out: int,
        w_out: int,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        """A ``kernel`` x ``kernel`` conv with an ``h_out`` x ``w_out`` output."""
        per_output = (c_in // groups) * kernel * kernel
        self.op(
            h_out * w_out * c_out * per_output,
            c_out * h_out * w_out,
            c_out * per_output + (c_out if bias else 0),
        )

    def batch_norm(self, channels: int, elements: int) -> None:
        """BatchNorm in eval mode, affine: two MACs per element."""
        self.op(2 * elements, elements, 2 * channels)

    def layer_norm(self, channels: int, elements: int) -> None:
        """LayerNorm over ``channels``: five MACs per element (fvcore's count)."""
        self.op(5 * elements, elements, 2 * channels)

    def group_norm(self, channels: int, elements: int) -> None:
        """GroupNorm, affine: five MACs per element (fvcore's count, as LayerNorm)."""
        self.op(5 * elements, elements, 2 * channels)

    def weight_std(self, c_in: int, c_out: int, kernel: int, groups: int = 1) -> None:
        """Weight standardisation of a conv's weight (once per forward, whatever the batch):
        a BatchNorm in training mode without affine over the weight, four MACs per weight
        (fvcore's count of ``F.batch_norm``, as timm's ``StdConv2d`` computes it)."""
        weights = c_out * (c_in // groups) * kernel * kernel
        self.op(4 * weights, weights)

    def linear(self, tokens: int, c_in: int, c_out: int, bias: bool = True) -> None:
        """A Linear applied to ``tokens`` tokens."""
        self.op(tokens * c_in * c_out, tokens * c_out, c_in * c_out + (c_out if bias else 0))

    def norm2d(self, kind: str, channels: int, elements: int) -> None:
        """The norm an embedding or block names: ``layer``, ``batch``, ``group`` or ``none``."""
        if kind == "layer":
            self.layer_norm(channels, elements)
        elif kind == "group":
            self.group_norm(channels, elements)
        elif kind == "batch":
            self.batch_norm(channels, elements)

    def squeeze_excite(self, channels: int, reduced: int, h: int, w: int) -> None:
        """Squeeze-excitation on a ``channels`` x ``h`` x ``w`` map: two 1x1 convs with bias; the
        squeeze (a mean, which fvcore does not count), the gate and the product count zero."""
        self.conv(channels, reduced, 1, 1, 1, bias=True)
        self.conv(reduced, channels, 1, 1, 1, bias=True)

    def involution(
        self, channels: int, kernel: int, group_channels: int, reduction: int, h_out: int, w_out: int
    ) -> None:
        """Involution (Li et al. 2021, :class:`~archsearch.ops.Involution`) with an ``h_out`` x
        ``w_out`` output: the kernel generator's 1x1 reduce + BN and 1x1 span conv (bias) on the
        (pooled) map, and the weighted sum, ``channels * kernel**2`` MACs per output pixel (a
        batched matrix product); the pool, the ReLU and the unfold count zero."""
        reduced, groups, pixels = channels // reduction, channels // group_channels, h_out * w_out
        self.conv(channels, reduced, 1, h_out, w_out)
        self.batch_norm(reduced, reduced * pixels)
        self.conv(reduced, kernel * kernel * groups, 1, h_out, w_out, bias=True)
        self.op(channels * kernel * kernel * pixels, channels * pixels)

    def inverted_residual(
        self,
        c_in: int,
        hidden: int,
        c_out: int,
        kernel: int,
        hw: tuple[int, int],
        out: tuple[int, int],
        *,
        expand: bool = True,
        se: int = 0,
    ) -> None:
        """MobileNetV2 inverted residual: 1x1 expand + BN (unless ``expand`` is off: then ``hidden``
        is ``c_in``), kxk depthwise + BN (map ``hw`` -> ``out``), squeeze-excitation to ``se``
        channels (if any), 1x1 project + BN; activations and the residual add count zero."""
        (h, w), (ho, wo) = hw, out
        if expand:
            self.conv(c_in, hidden, 1, h, w)
            self.batch_norm(hidden, hidden * h * w)
        self.conv(hidden, hidden, kernel, ho, wo, groups=hidden)
        self.batch_norm(hidden, hidden * ho * wo)
        if se:
            self.squeeze_excite(hidden, se, ho, wo)
        self.conv(hidden, c_out, 1, ho, wo)
        self.batch_norm(c_out, c_out * ho * wo)
