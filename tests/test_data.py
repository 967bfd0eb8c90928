"""Datasets: digits, CIFAR pickles and image folders, their splits, resizing, caching and errors."""

from __future__ import annotations

import pickle
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import TypeAdapter, ValidationError

from archsearch import SpecError
from archsearch.data import (
    CifarData,
    DataConfig,
    DigitsData,
    ImageFolderData,
    clear_dataset_cache,
    load_dataset,
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Files written by one test must not be served from another's cache (tmp paths repeat)."""
    clear_dataset_cache()
    yield
    clear_dataset_cache()


def _digits_native() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.rint(digits.images * (255 / 16)).astype(np.uint8), digits.target


# --------------------------------------------------------------------------- digits


def test_digits_split_is_stratified_disjoint_and_complete():
    data = load_dataset(DigitsData(), input_size=(8, 8), channels=1)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert data.train_images.shape[1:] == (1, 8, 8) and data.val_images.shape[1:] == (1, 8, 8)
    assert data.num_classes == 10 and data.classes == tuple("0123456789")
    assert data.num_train + data.num_val == 1797
    assert len(data.train_labels) == data.num_train and len(data.val_labels) == data.num_val

    images, labels = _digits_native()
    per_class = np.bincount(labels)
    val_counts = torch.bincount(data.val_labels, minlength=10).numpy()
    assert (np.abs(val_counts - 0.2 * per_class) <= 0.5).all()  # round(n * 0.2) of every class

    # Every image lands in exactly one split, with its own label (the 1797 digits are all distinct).
    original = Counter((img.tobytes(), int(y)) for img, y in zip(images, labels, strict=True))
    train = Counter(
        (x[0].numpy().tobytes(), int(y)) for x, y in zip(data.train_images, data.train_labels, strict=True)
    )
    val = Counter(
        (x[0].numpy().tobytes(), int(y)) for x, y in zip(data.val_images, data.val_labels, strict=True)
    )
    assert not set(train) & set(val)
    assert train + val == original
    assert int(data.train_images.max()) == 255  # 16 -> 255


def test_digits_seed_changes_the_split_and_fraction_its_size():
    a = load_dataset(DigitsData(), input_size=(8, 8), channels=1)
    b = load_dataset(DigitsData(seed=1), input_size=(8, 8), channels=1)
    c = load_dataset(DigitsData(val_fraction=0.5), input_size=(8, 8), channels=1)
    assert a.num_val == b.num_val and not torch.equal(a.val_images, b.val_images)
    assert abs(c.num_val - 1797 / 2) <= 10


def test_digits_resized_to_32_rgb_and_cached():
    small = load_dataset(DigitsData(), input_size=(8, 8), channels=1)
    data = load_dataset(DigitsData(), input_size=(32, 32), channels=3)
    assert data.train_images.shape == (small.num_train, 3, 32, 32)
    assert data.input_size == (32, 32) and data.channels == 3
    assert torch.equal(data.train_images[:, 0], data.train_images[:, 2])  # grey replicated
    expected = F.interpolate(small.val_images[:5].float(), size=(32, 32), mode="bilinear", antialias=True)
    assert torch.equal(data.val_images[:5, :1], expected.round().clamp(0, 255).to(torch.uint8))
    assert torch.equal(data.train_labels, small.train_labels)

    again = load_dataset(DigitsData(), input_size=[32, 32], channels=3)
    assert again is data
    assert load_dataset(DigitsData(), input_size=(16, 16), channels=3) is not data
    clear_dataset_cache()
    assert load_dataset(DigitsData(), input_size=(32, 32), channels=3) is not data


def test_dataset_statistics_and_repr():
    data = load_dataset(DigitsData(), input_size=(8, 8), channels=1)
    pixels = data.train_images.double() / 255
    assert data.mean[0] == pytest.approx(pixels.mean().item())
    assert data.std[0] == pytest.approx(pixels.std(unbiased=False).item())
    assert repr(data) == "Dataset('digits', train=1438, val=359, classes=10, images=1x8x8)"


def test_bad_target_size_or_channels():
    with pytest.raises(
        SpecError, match=r"input\.channels: unsupported channel count \(got 2\); allowed: 1 or 3"
    ):
        load_dataset(DigitsData(), input_size=(8, 8), channels=2)
    with pytest.raises(SpecError, match=r"input\.size: the image size must be two positive ints"):
        load_dataset(DigitsData(), input_size=(8, 0), channels=1)


def test_configs_are_strict_and_discriminated():
    adapter: TypeAdapter[DataConfig] = TypeAdapter(DataConfig)
    assert isinstance(adapter.validate_python({"kind": "digits"}), DigitsData)
    cifar = adapter.validate_python({"kind": "cifar100", "root": "/x", "limit_train": 10})
    assert isinstance(cifar, CifarData) and cifar.kind == "cifar100"
    assert isinstance(adapter.validate_python({"kind": "imagefolder", "root": "/x"}), ImageFolderData)
    with pytest.raises(ValidationError, match="val_fractoin"):
        adapter.validate_python({"kind": "digits", "val_fractoin": 0.1})
    with pytest.raises(ValidationError, match="less than 1"):
        DigitsData(val_fraction=1.0)
    with pytest.raises(ValidationError):
        CifarData(root="/x", limit_train="10")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="'digits', 'cifar10', 'cifar100', 'imagefolder'"):
        adapter.validate_python({"kind": "mnist"})


# --------------------------------------------------------------------------- CIFAR


def _cifar_image(index: int) -> np.ndarray:
    """A [3, 32, 32] image whose planes say which channel, row and column a byte came from."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([rows * 4 + index, cols * 4, np.full((32, 32), 50 + index)]).astype(np.uint8)


def _write_batch(path: Path, label_key: bytes, start: int, count: int, classes: int) -> None:
    images = np.stack([_cifar_image(start + i) for i in range(count)]).reshape(count, 3072)
    batch = {
        b"batch_label": b"testing batch",
        label_key: [(start + i) % classes for i in range(count)],
        b"data": images,
        b"filenames": [f"img{start + i}.png".encode() for i in range(count)],
    }
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [0] * count
    with path.open("wb") as f:
        pickle.dump(batch, f, protocol=2)


def _cifar10(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(5):
        _write_batch(folder / f"data_batch_{i + 1}", b"labels", 4 * i, 4, 10)
    _write_batch(folder / "test_batch", b"labels", 100, 3, 10)
    names = [f"class{i}".encode() for i in range(10)]
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f, protocol=2)
    return folder


def test_cifar10_round_trips_pixels_labels_and_names(tmp_path):
    folder = _cifar10(tmp_path)
    data = load_dataset(CifarData(root=str(tmp_path)), input_size=(32, 32), channels=3)
    assert data.name == "cifar10" and data.num_classes == 10 and data.classes[3] == "class3"
    assert data.train_images.shape == (20, 3, 32, 32) and data.val_images.shape == (3, 3, 32, 32)
    assert data.train_labels.tolist() == [i % 10 for i in range(20)]
    assert data.val_labels.tolist() == [0, 1, 2]
    image = data.train_images[7]  # R plane first, then G, then B, each 32x32 row-major
    assert image[0, 5, 9] == 5 * 4 + 7 and image[1, 5, 9] == 9 * 4 and image[2, 5, 9] == 57
    assert torch.equal(data.val_images[1], torch.from_numpy(_cifar_image(101)))

    direct = load_dataset(
        CifarData(root=str(folder), limit_train=6, limit_val=2), input_size=(32, 32), channels=3
    )
    assert direct.num_train == 6 and direct.num_val == 2
    assert torch.equal(direct.train_images, data.train_images[:6])


def test_cifar_to_grey_uses_luma_and_resizes(tmp_path):
    _cifar10(tmp_path)
    grey = load_dataset(CifarData(root=str(tmp_path)), input_size=(32, 32), channels=1)
    r, g, b = _cifar_image(2)[:, 10, 3].astype(float)
    assert grey.train_images.shape == (20, 1, 32, 32)
    assert grey.train_images[2, 0, 10, 3] == round(0.299 * r + 0.587 * g + 0.114 * b)
    small = load_dataset(CifarData(root=str(tmp_path)), input_size=(16, 8), channels=3)
    assert small.train_images.shape == (20, 3, 16, 8)
    assert (small.train_images[:, 2] == small.train_images[:, 2, :1, :1]).all()  # a flat plane stays flat


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _write_batch(folder / "train", b"fine_labels", 0, 6, 100)
    _write_batch(folder / "test", b"fine_labels", 60, 2, 100)
    names = [f"fine{i}".encode() for i in range(100)]
    with (folder / "meta").open("wb") as f:
        pickle.dump({b"fine_label_names": names, b"coarse_label_names": []}, f, protocol=2)
    data = load_dataset(CifarData(kind="cifar100", root=str(folder)), input_size=(32, 32), channels=3)
    assert data.num_classes == 100 and data.classes[42] == "fine42"
    assert data.train_labels.tolist() == [0, 1, 2, 3, 4, 5] and data.val_labels.tolist() == [60, 61]
    assert torch.equal(data.train_images[4], torch.from_numpy(_cifar_image(4)))


def test_cifar_errors_name_the_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SpecError, match=re.escape(f"data.root: {missing} does not exist")) as info:
        load_dataset(CifarData(root=str(missing)), input_size=(32, 32), channels=3)
    assert info.value.path == "data.root"
    with pytest.raises(SpecError, match=r"expected CIFAR-10 python batches data_batch_1\.\.5 and test_batch"):
        load_dataset(CifarData(root=str(tmp_path)), input_size=(32, 32), channels=3)
    folder = _cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(SpecError, match=re.escape(f"{folder} lacks data_batch_3: expected CIFAR-10")):
        load_dataset(CifarData(root=str(tmp_path)), input_size=(32, 32), channels=3)
    with pytest.raises(SpecError, match="expected CIFAR-100 python batches train and test"):
        load_dataset(CifarData(kind="cifar100", root=str(tmp_path)), input_size=(32, 32), channels=3)


def test_cifar_refuses_foreign_pickles_and_bad_shapes(tmp_path):
    folder = _cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(
        SpecError, match=r"cannot read .*test_batch as a CIFAR python batch: refusing to load os"
    ):
        load_dataset(CifarData(root=str(folder)), input_size=(32, 32), channels=3)
    with (folder / "test_batch").open("wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(SpecError, match=r"test_batch: expected 'data' uint8 \[N, 3072\]"):
        load_dataset(CifarData(root=str(folder)), input_size=(32, 32), channels=3)


# --------------------------------------------------------------------------- image folders

COLOURS = {"cat": (255, 0, 0), "ant": (0, 0, 255), "bee": (0, 255, 0)}


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _flat(root: Path, per_class: int = 5) -> Path:
    for name, colour in COLOURS.items():
        for i in range(per_class):
            _png(root / name / f"{i}.png", colour, size=(12 + i, 10 + 3 * i))  # every image its own size
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"")
    return root


def test_imagefolder_flat_layout_split_and_decoded(tmp_path):
    root = _flat(tmp_path / "set")
    data = load_dataset(ImageFolderData(root=str(root), val_fraction=0.4), input_size=(8, 8), channels=3)
    assert data.classes == ("ant", "bee", "cat") and data.num_classes == 3
    assert data.train_images.shape == (9, 3, 8, 8) and data.val_images.shape == (6, 3, 8, 8)
    assert torch.bincount(data.val_labels).tolist() == [2, 2, 2]
    for images, labels in ((data.train_images, data.train_labels), (data.val_images, data.val_labels)):
        for image, label in zip(images, labels, strict=True):
            colour = COLOURS[data.classes[label]]
            assert (image == torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1)).all()

    grey = load_dataset(ImageFolderData(root=str(root), val_fraction=0.4), input_size=(4, 6), channels=1)
    assert grey.train_images.shape == (9, 1, 4, 6)
    red = grey.train_images[grey.train_labels == 2]
    assert (red == 76).all()  # Pillow's L of pure red

    other = load_dataset(
        ImageFolderData(root=str(root), val_fraction=0.4, seed=3), input_size=(8, 8), channels=3
    )
    assert other.num_val == 6
    limited = load_dataset(ImageFolderData(root=str(root), limit_per_class=2), input_size=(8, 8), channels=3)
    assert limited.num_train + limited.num_val == 6


def test_imagefolder_train_val_layout(tmp_path):
    for split, count in (("train", 3), ("val", 2)):
        for name in ("zebra", "ant"):
            for i in range(count):
                _png(tmp_path / split / name / f"{i}.jpg", COLOURS["cat"] if name == "ant" else (9, 9, 9))
    data = load_dataset(ImageFolderData(root=str(tmp_path)), input_size=(10, 12), channels=3)
    assert data.classes == ("ant", "zebra")
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1, 1] and data.val_labels.tolist() == [0, 0, 1, 1]
    assert data.val_images.shape == (4, 3, 10, 12)
    assert abs(int(data.val_images[3, 0, 5, 5]) - 9) <= 2  # JPEG is lossy


def test_imagefolder_errors_name_the_path(tmp_path):
    def load(root: Path):
        return load_dataset(ImageFolderData(root=str(root)), input_size=(8, 8), channels=3)

    with pytest.raises(
        SpecError, match=re.escape(f"data.root: image folder {tmp_path / 'absent'} does not exist")
    ):
        load(tmp_path / "absent")
    _png(tmp_path / "one" / "only" / "a.png", (1, 2, 3))
    with pytest.raises(
        SpecError, match=re.escape(f"{tmp_path / 'one'} needs at least 2 class folders (found only 'only')")
    ):
        load(tmp_path / "one")
    root = _flat(tmp_path / "set")
    (root / "dog").mkdir()
    (root / "dog" / "readme.txt").write_text("no images here")
    with pytest.raises(SpecError, match=re.escape(f"class folder {root / 'dog'} has no image files")) as info:
        load(root)
    assert info.value.path == "data.root"
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(SpecError, match=re.escape(f"cannot read the image {root / 'dog' / 'broken.png'}")):
        load(root)
    _png(tmp_path / "half" / "train" / "a" / "0.png", (0, 0, 0))
    with pytest.raises(SpecError, match="has train/ but no val/"):
        load(tmp_path / "half")
