"""Which part of a compiled model depends on the input size, and the error for another size."""

from __future__ import annotations

from ..core import NormalizedSpec, Path
from ..errors import InputSizeError, format_path
from ..kinds import MIXERS

__all__ = ["input_shape_error", "input_size_error", "size_dependence"]


def size_dependence(plan: NormalizedSpec) -> tuple[Path, str] | None:
    """The first part of the planned model made for its input size, as ``(YAML path, what it
    holds)``, or ``None`` where the model runs on inputs of any size (convolutions, pooling, global
    attention without a position table). Size-dependent: ``absolute`` and ``sinusoidal`` position
    tables, and the blocks whose mixer kind says so (:meth:`archsearch.kinds.MixerKind.fixed_size`:
    Swin windows, BoTNet relative logits)."""
    for stage in plan.stages:
        if stage.pos_embed in ("absolute", "sinusoidal"):
            grid = f"{stage.embed_shape.height}x{stage.embed_shape.width}"
            kind = "learned" if stage.pos_embed == "absolute" else "fixed"
            return (
                ("stages", stage.index, "pos_embed"),
                f"{stage.pos_embed} is a {kind} table for the {grid} token grid",
            )
        for block in stage.blocks:
            reason = MIXERS.get(block.mixer.kind).fixed_size(block)
            if reason is not None:
                return ("stages", stage.index, "mixer"), f"{block.mixer.kind} {reason}"
    return None


def _size(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"


def input_size_error(plan: NormalizedSpec, part: tuple[Path, str], given: tuple[int, int]) -> InputSizeError:
    """The error for a ``given`` ``(height, width)`` input to a model built for another size, whose
    ``part`` (from :func:`size_dependence`) depends on it: it names the built and the given size,
    the part with its file:line, and what to do."""
    built = (plan.input_shape.height, plan.input_shape.width)
    path, what = part
    where = plan.source.issue(path, "").location
    yaml_size = str(given[0]) if given[0] == given[1] else f"[{given[0]}, {given[1]}]"
    py_size = str(given[0]) if given[0] == given[1] else f"({given[0]}, {given[1]})"
    message = (
        f"{plan.name} was built for {_size(built)} inputs (input.size) but got {_size(given)}: "
        f"{where + ': ' if where else ''}{format_path(path)}: {what} of {_size(built)} inputs. "
        f"Set `dynamic_size: true` in the spec (or call model.set_dynamic_size(True)) to accept other "
        f"sizes, or build the model at {_size(given)} (input.size: {yaml_size}, or "
        f"archsearch.create_model(..., input_size={py_size}))"
    )
    return InputSizeError(message, built, given)


def input_shape_error(plan: NormalizedSpec, shape: tuple[int, ...]) -> ValueError:
    """The error for a tensor of ``shape`` that is not a batch of the plan's images ``(B, C, H,
    W)``: not 4-D, or another number of channels; it names the model, the channels it takes with
    their file:line, the shape got and what to do."""
    channels = plan.input_shape.channels
    where = plan.source.issue(("input", "channels"), "").location
    got = f"got a tensor of shape {tuple(shape)}"
    if len(shape) == 3 and shape[0] == channels:
        fix = "add the batch axis: x.unsqueeze(0)"
    elif len(shape) == 4:
        got = f"got {shape[1]} channels (shape {tuple(shape)})"
        fix = (
            f"build it for {shape[1]} channels (input.channels: {shape[1]}, or "
            f"archsearch.create_model(..., in_chans={shape[1]}))"
        )
    else:
        fix = "pass a 4-D batch of images"
    return ValueError(
        f"{plan.name} takes (batch, {channels}, height, width) images (input.channels: {channels}"
        f"{', ' + where if where else ''}) but {got}; {fix}"
    )
