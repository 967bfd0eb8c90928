"""CIFAR-10 / CIFAR-100 from the python pickle batches, read with a restricted unpickler."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import Issue, SpecError
from ._config import CifarData

__all__ = ["load_cifar"]

_ROOT = ("data", "root")


class _Layout:
    def __init__(self, title: str, folder: str, train: list[str], test: str, meta: str, labels: str):
        self.title, self.folder, self.train, self.test = title, folder, train, test
        self.meta, self.labels = meta, labels

    @property
    def expected(self) -> str:
        train = "data_batch_1..5" if len(self.train) > 1 else self.train[0]
        return f"{self.title} python batches {train} and {self.test}"


_LAYOUTS = {
    "cifar10": _Layout(
        "CIFAR-10",
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        "labels",
    ),
    "cifar100": _Layout("CIFAR-100", "cifar-100-python", ["train"], "test", "meta", "fine_labels"),
}
_META_NAMES = {"cifar10": "label_names", "cifar100": "fine_label_names"}
_NUM_CLASSES = {"cifar10": 10, "cifar100": 100}

#: What the official files (and numpy pickles of them) may reference, and nothing else.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy") and name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, whichever module
        return super().find_class(module, name)


def _find_dir(root: Path, layout: _Layout) -> Path:
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise SpecError(
            Issue(_ROOT, f"{root} {what}; expected {layout.expected} in it or in {layout.folder}/ below it")
        )
    for candidate in (root, root / layout.folder):
        if (candidate / layout.test).is_file() or (candidate / layout.train[0]).is_file():
            return candidate
    raise SpecError(
        Issue(
            _ROOT,
            f"no {layout.title} data in {root}: expected {layout.expected} there or in {layout.folder}/",
        )
    )


def _unpickle(path: Path) -> dict[Any, Any]:
    try:
        with path.open("rb") as f:
            obj = _Unpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise SpecError(Issue(_ROOT, f"cannot read {path} as a CIFAR python batch: {exc}")) from None
    if not isinstance(obj, dict):
        raise SpecError(
            Issue(_ROOT, f"{path} is not a CIFAR python batch (a dict), got {type(obj).__name__}")
        )
    return obj


def _get(batch: dict[Any, Any], key: str) -> Any:
    """Keys are bytes in the official files (pickled by Python 2); accept str too."""
    return batch[key.encode()] if key.encode() in batch else batch.get(key)


def _read_split(
    directory: Path, files: list[str], layout: _Layout, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        path = directory / name
        batch = _unpickle(path)
        data, targets = _get(batch, "data"), _get(batch, layout.labels)
        if data is None or targets is None:
            raise SpecError(Issue(_ROOT, f"{path} has no 'data' and '{layout.labels}' entries"))
        data = np.asarray(data)
        targets = np.asarray(targets, dtype=np.int64).reshape(-1)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(targets) != len(data):
            raise SpecError(
                Issue(
                    _ROOT,
                    f"{path}: expected 'data' uint8 [N, 3072] and N labels, got {data.dtype} "
                    f"{list(data.shape)} and {len(targets)} labels",
                )
            )
        if len(targets) and (targets.min() < 0 or targets.max() >= _NUM_CLASSES[kind]):
            raise SpecError(Issue(_ROOT, f"{path}: labels outside 0..{_NUM_CLASSES[kind] - 1}"))
        images.append(data.reshape(-1, 3, 32, 32))  # rows: the R plane, then G, then B, row-major
        labels.append(targets)
    return np.concatenate(images), np.concatenate(labels)


def _class_names(directory: Path, layout: _Layout, kind: str) -> tuple[str, ...]:
    count = _NUM_CLASSES[kind]
    path = directory / layout.meta
    if not path.is_file():
        return tuple(str(i) for i in range(count))
    names = _get(_unpickle(path), _META_NAMES[kind])
    if not isinstance(names, list) or len(names) != count:
        raise SpecError(Issue(_ROOT, f"{path}: expected {count} '{_META_NAMES[kind]}'"))
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def load_cifar(
    config: CifarData,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """``(train_images, train_labels, val_images, val_labels, classes)`` at 32x32 RGB."""
    layout = _LAYOUTS[config.kind]
    directory = _find_dir(Path(config.root).expanduser(), layout)
    missing = [n for n in [*layout.train, layout.test] if not (directory / n).is_file()]
    if missing:
        raise SpecError(Issue(_ROOT, f"{directory} lacks {', '.join(missing)}: expected {layout.expected}"))
    train_x, train_y = _read_split(directory, layout.train, layout, config.kind)
    val_x, val_y = _read_split(directory, [layout.test], layout, config.kind)
    train_x, train_y = train_x[: config.limit_train], train_y[: config.limit_train]
    val_x, val_y = val_x[: config.limit_val], val_y[: config.limit_val]
    classes = _class_names(directory, layout, config.kind)
    return (
        torch.from_numpy(np.ascontiguousarray(train_x)),
        torch.from_numpy(train_y),
        torch.from_numpy(np.ascontiguousarray(val_x)),
        torch.from_numpy(val_y),
        classes,
    )
