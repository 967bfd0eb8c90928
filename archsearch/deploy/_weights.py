"""Weights into a built model: a safetensors file or a PyTorch checkpoint, checked key by key."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compiler import ArchNet, resample_state_dict
from ..errors import ExportError

__all__ = ["load_weights", "read_state_dict", "save_weights"]

#: Keys under which checkpoints commonly nest the model's state dict.
_NESTED = ("state_dict", "model", "model_state_dict", "module", "ema")
_SHOWN = 3  # keys named per kind of mismatch; the rest are counted


def read_state_dict(source: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, by name: ``.safetensors`` (read with safetensors), or a file
    ``torch.save`` wrote (read with ``weights_only=True``: no code from the file runs), holding a
    state dict or a dict that nests one under ``state_dict``, ``model``, ``model_state_dict``,
    ``module`` or ``ema``; DistributedDataParallel's ``module.`` prefix is dropped.

    Raises :class:`ExportError` (one line naming the file) for a missing file or a folder, a file
    that is neither format, one whose content is not a mapping of names to tensors, or a
    ``.safetensors`` file when the safetensors package is not installed.
    """
    path = Path(source)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no such file"
        raise ExportError(f"{path}: {what}; allowed: a .safetensors file or a state dict saved by torch.save")
    data: Any
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        data = _read_safetensors(path)
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # arbitrary bytes make the unpickler raise almost anything (IndexError...)
            raise ExportError(
                f"{path}: not a PyTorch checkpoint or safetensors file ({_why(exc)}); "
                "allowed: a .safetensors file or a state dict saved by torch.save"
            ) from None
    for key in _NESTED:
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping) or not data:
        got = "an empty mapping" if isinstance(data, Mapping) else type(data).__name__
        raise ExportError(f"{path}: holds {got}, not a state dict (a mapping of parameter names to tensors)")
    bad = [k for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ExportError(
            f"{path}: not a state dict: {len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not "
            f"tensors named by strings (first: {bad[0]!r} -> {type(data[bad[0]]).__name__})"
        )
    state = dict(data)
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def save_weights(
    weights: nn.Module | Mapping[str, torch.Tensor],
    target: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a model's state dict (or a state dict) to ``target``, atomically (a ``.part`` file
    renamed into place, so a reader never sees half a file) and with the usual file mode
    (safetensors itself writes 0600).

    ``.safetensors`` targets are written with the safetensors package: a model with
    ``save_model`` (tensors that share memory stored once, as ``load_model`` expects), a state
    dict with every key (shared tensors stored as copies); where the package is not installed the
    state dict goes to a ``torch.save`` file with the suffix ``.pt`` instead. Any other suffix is
    written with ``torch.save``. :func:`read_state_dict` and :func:`load_weights` read both.
    Returns the path written.

    Raises :class:`ExportError` when ``metadata`` is given for a ``torch.save`` file (only
    safetensors stores it).
    """
    path = Path(target)
    safetensors: Any = None
    if path.suffix == ".safetensors":
        try:
            from safetensors import torch as safetensors
        except ImportError:
            path = path.with_suffix(".pt")
    if safetensors is None and metadata:
        raise ExportError(f"{path}: metadata needs the safetensors format (pip install safetensors)")
    tmp = path.with_name(path.name + ".part")
    if safetensors is not None and isinstance(weights, nn.Module):
        safetensors.save_model(weights, str(tmp), metadata={"format": "pt", **(metadata or {})})
    else:
        state = weights.state_dict() if isinstance(weights, nn.Module) else dict(weights)
        state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        if safetensors is not None:
            safetensors.save_file(_unshared(state), str(tmp), metadata={"format": "pt", **(metadata or {})})
        else:
            torch.save(state, tmp)
    os.replace(tmp, path)
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
    return path


def _unshared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with tensors that share storage cloned apart: safetensors refuses shared memory."""
    seen: set[int] = set()
    out = {}
    for key, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        out[key] = tensor.clone() if ptr in seen else tensor
        if ptr != -1:
            seen.add(ptr)
    return out


def _why(exc: BaseException) -> str:
    """torch.load's reason, in a few words: its messages run to several paragraphs."""
    text = str(exc).strip()
    if isinstance(exc, EOFError) or not text:
        return "the file is empty or cut short"
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. |\n|$)", text)
    if found:
        reason = found.group(1).strip()
        unsafe = re.match(r"Unsupported global: GLOBAL (\S+)", reason)
        if unsafe:  # a whole model or an optimizer was pickled: weights_only loading will not run it
            return f"it pickles a {unsafe.group(1)} object, which is not loaded; save model.state_dict()"
        return f"not a pickle torch.save wrote: {reason}"
    return text.splitlines()[0].split(". ")[0][:200]


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length and a JSON header: ``{"``."""
    with path.open("rb") as f:
        head = f.read(10)
    return len(head) == 10 and head[8:10] == b'{"'


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise ExportError(
            f"safetensors is not installed: pip install 'archsearch[export]' (it reads {path})"
        ) from None
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: not a valid safetensors file ({first})") from None


def load_weights(
    model: nn.Module,
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    input_size: int | tuple[int, int] | list[int] | None = None,
    strict: bool = True,
) -> Any:
    """Load ``source`` (a weights file, see :func:`read_state_dict`, or a state dict, possibly
    nested under ``state_dict``/``model``/...) into ``model``.

    Weights saved at another input size load as timm's checkpoint filters do: for an archsearch
    model, position tables, Swin relative-bias tables and BoTNet relative embeddings are resampled
    to the model's size (:func:`archsearch.compiler.resample_state_dict`; ``input_size`` is the
    size the weights were saved at when their tables are not square). Then, with ``strict``, every
    parameter and buffer of the model must be there with its shape, and nothing else.
    ``load_weights(create_model("deit-ti", input_size=384), "deit-ti-224.pt")``.

    Returns ``model.load_state_dict``'s missing and unexpected keys (empty lists when ``strict``).

    Raises:
        ExportError: one line naming the file (``PATH: REASON; allowed: ...``), as
            :func:`read_state_dict` raises it: a missing file (``PATH: no such file``) or a
            folder, a file that is neither a safetensors file nor one ``torch.save`` wrote, an
            empty one, one holding no state dict, a ``.safetensors`` file without the
            safetensors package installed (``safetensors is not installed: pip install
            'archsearch[export]' (...)``); then mis-shaped keys, and with ``strict`` missing and
            unexpected keys (three of each named, the rest counted), with a hint when only the
            classifier's size differs.
        ValueError: a position or bias table that cannot be resampled to the model's (another
            width, or a non-square table without ``input_size``).
    """
    name = str(source) if not isinstance(source, Mapping) else "the state dict"
    state = _unwrap(source) if isinstance(source, Mapping) else read_state_dict(source)
    if isinstance(model, ArchNet):
        state = dict(resample_state_dict(model, state, input_size=input_size))
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        (k, tuple(state[k].shape), tuple(v.shape))
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if strict and missing:
            parts.append(f"{len(missing)} missing ({_some(missing)})")
        if strict and unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_some(unexpected)})")
        if shapes:
            shown = ", ".join(f"{k}: file {list(a)}, model {list(b)}" for k, a, b in shapes[:_SHOWN])
            more = f", {len(shapes) - _SHOWN} more" if len(shapes) > _SHOWN else ""
            parts.append(f"{len(shapes)} of another shape ({shown}{more})")
        hint = ""
        if not missing and not unexpected and all(k.startswith("head.fc.") for k, _, _ in shapes):
            n = shapes[0][1][0]
            hint = f"; trained for {n} classes? pass --num-classes {n} (Python: num_classes={n})"
        raise ExportError(f"{name}: the weights do not fit {_name(model)}: " + "; ".join(parts) + hint)
    return model.load_state_dict(state, strict=strict)


def _unwrap(state: Mapping[str, Any]) -> dict[str, Any]:
    """A state dict given as a mapping, unwrapped from the keys checkpoints nest it under."""
    for key in _NESTED:
        inner = state.get(key)
        if isinstance(inner, Mapping):
            state = inner
            break
    return dict(state)


def _some(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f", {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def _name(model: nn.Module) -> str:
    plan = getattr(model, "plan", None)
    return f"the model {plan.name}" if plan is not None else f"the {type(model).__name__}"
