"""Image folders (one sub-folder per class), decoded with Pillow and resized in torch."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import Issue, SpecError
from ._config import ImageFolderData
from ._dataset import resize_images, stratified_split

__all__ = ["IMAGE_EXTENSIONS", "list_imagefolder", "load_imagefolder", "open_image"]

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp"}
)
_ROOT = ("data", "root")
_CHUNK = 256  # files decoded before they are resized, to bound memory


def _classes(directory: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files, for every visible sub-folder."""
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            f
            for f in sub.iterdir()
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            allowed = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise SpecError(Issue(_ROOT, f"class folder {sub} has no image files", allowed=allowed))
        out[sub.name] = files
    return out


_READ_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombWarning,
    Image.DecompressionBombError,
)


def open_image(path: str | Path, mode: str) -> Image.Image:
    """Decode ``path`` and convert it to ``mode`` (``RGB`` or ``L``); a decompression bomb is an
    error, not a warning. Raises OSError naming the file (it is raised in DataLoader workers, which
    re-raise by message alone)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.convert(mode)
    except _READ_ERRORS as exc:
        raise OSError(f"cannot read the image {path}: {exc}") from None


def _decode(path: Path, mode: str) -> np.ndarray:
    try:
        return np.asarray(open_image(path, mode))
    except OSError as exc:
        raise SpecError(Issue(_ROOT, str(exc))) from None


def _read(files: list[Path], size: tuple[int, int], channels: int) -> torch.Tensor:
    """Decode (as RGB or L) and resize to ``size``; images of one size are resized together."""
    mode = "RGB" if channels == 3 else "L"
    out = torch.empty((len(files), channels, *size), dtype=torch.uint8)
    for start in range(0, len(files), _CHUNK):
        by_shape: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
        for i, path in enumerate(files[start : start + _CHUNK], start):
            array = _decode(path, mode)
            by_shape.setdefault(array.shape, []).append((i, array))
        for group in by_shape.values():
            index = torch.tensor([i for i, _ in group])
            stacked = torch.from_numpy(np.stack([a for _, a in group]))
            stacked = stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
            out[index] = resize_images(stacked.contiguous(), size)
    return out


def _labelled(
    classes: dict[str, list[Path]], names: list[str], limit: int | None
) -> tuple[list[Path], list[int]]:
    files: list[Path] = []
    labels: list[int] = []
    for name, members in classes.items():
        members = members[:limit]
        files += members
        labels += [names.index(name)] * len(members)
    return files, labels


def list_imagefolder(
    config: ImageFolderData,
) -> tuple[list[Path], list[int], list[Path], list[int], tuple[str, ...]]:
    """``(train_files, train_labels, val_files, val_labels, classes)`` without decoding anything.
    Raises SpecError (path ``data.root``) for a missing root or a bad layout."""
    root = Path(config.root).expanduser()
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise SpecError(Issue(_ROOT, f"image folder {root} {what}"))
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir() != val_dir.is_dir():
        have, lack = (train_dir, val_dir) if train_dir.is_dir() else (val_dir, train_dir)
        raise SpecError(
            Issue(_ROOT, f"{root} has {have.name}/ but no {lack.name}/: expected both, or class folders only")
        )
    split = train_dir.is_dir()
    train_classes = _classes(train_dir if split else root)
    names = sorted(train_classes)
    if len(names) < 2:
        found = f"only {names[0]!r}" if names else "none"
        raise SpecError(
            Issue(_ROOT, f"{train_dir if split else root} needs at least 2 class folders (found {found})")
        )
    if split:
        val_classes = _classes(val_dir)
        extra = sorted(set(val_classes) - set(names))
        if extra:
            raise SpecError(Issue(_ROOT, f"{val_dir} has classes not in {train_dir}: {', '.join(extra)}"))
        train_files, train_labels = _labelled(train_classes, names, config.limit_per_class)
        val_files, val_labels = _labelled(val_classes, names, config.limit_per_class)
    else:
        files, labels = _labelled(train_classes, names, config.limit_per_class)
        train_idx, val_idx = stratified_split(np.asarray(labels), config.val_fraction, config.seed)
        train_files, val_files = [files[i] for i in train_idx], [files[i] for i in val_idx]
        train_labels, val_labels = [labels[i] for i in train_idx], [labels[i] for i in val_idx]
    return train_files, train_labels, val_files, val_labels, tuple(names)


def load_imagefolder(
    config: ImageFolderData, size: tuple[int, int], channels: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """``(train_images, train_labels, val_images, val_labels, classes)`` at ``size``."""
    train_files, train_labels, val_files, val_labels, names = list_imagefolder(config)
    return (
        _read(train_files, size, channels),
        torch.tensor(train_labels, dtype=torch.int64),
        _read(val_files, size, channels),
        torch.tensor(val_labels, dtype=torch.int64),
        names,
    )
