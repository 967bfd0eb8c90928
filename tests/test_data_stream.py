"""Streamed data: random-resized crop semantics, the DataLoader stream over a generated image folder,
CIFAR and synthetic data, the batch iterator of both kinds, ``cache: auto`` and config errors."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archsearch import SpecError
from archsearch.data import (
    CifarData,
    Dataset,
    ImageFolderData,
    StreamData,
    SyntheticData,
    batches,
    cache_mode,
    clear_dataset_cache,
    decoded_bytes,
    load_data,
    load_dataset,
    random_resized_crop_box,
    train_transform,
    val_transform,
)
from archsearch.search import load_experiment

#: One colour per class: every crop of a plain image keeps its colour, so a label can be checked
#: against the pixels whatever the augmentation did.
COLOURS = {"ant": (220, 30, 30), "bee": (30, 200, 40), "cat": (40, 40, 210)}


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_dataset_cache()
    yield
    clear_dataset_cache()


def _folder(root: Path, per_class: int = 6) -> Path:
    """``root/train/<class>`` and ``root/val/<class>``: plain images of the class colour, PNG and
    JPEG, of different sizes and aspect ratios (some grey-scale PNGs too)."""
    for split, count in (("train", per_class), ("val", 2)):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                size = (40 + 13 * i, 30 + 7 * (i % 3))
                image = Image.new("RGB", size, colour)
                if i % 2:
                    image.save(folder / f"{i}.jpg", quality=95)
                else:
                    image.save(folder / f"{i}.png")
    return root


def _stream(root: Path, **extra) -> StreamData:
    config = ImageFolderData(root=str(root), cache="stream", workers=0, **extra)
    data = load_data(config, input_size=(24, 20), channels=3)
    assert isinstance(data, StreamData)
    return data


def _epoch(data, split="train", batch_size=4, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    out = list(batches(data, split, batch_size, **kw))
    return torch.cat([x for x, _ in out]), torch.cat([y for _, y in out])


# --------------------------------------------------------------------------- transforms


def test_random_resized_crop_box_follows_torchvision_semantics():
    rng = np.random.default_rng(0)
    areas, ratios = [], []
    for _ in range(2000):
        top, left, h, w = random_resized_crop_box(300, 400, rng)
        assert top >= 0 and top + h <= 300 and left >= 0 and left + w <= 400 and h > 0 and w > 0
        areas.append(h * w / (300 * 400))
        ratios.append(w / h)
    # Area fraction uniform on (0.08, 1) and log aspect uniform on (log 3/4, log 4/3), up to rounding
    # and the rejected tries (large areas at extreme ratios do not fit a 300x400 image).
    assert min(areas) >= 0.075 and max(areas) <= 1.0
    assert min(ratios) >= 0.74 and max(ratios) <= 1.36
    assert abs(float(np.median(np.log(ratios)))) < 0.1
    assert 0.3 < float(np.mean(areas)) < 0.6


def test_random_resized_crop_falls_back_to_a_clamped_center_crop():
    rng = np.random.default_rng(0)
    # No crop of a 1000x10 strip has a ratio in range and a fitting size: the whole width, the
    # height clamped to ratio 3/4 (10 / (3/4) = 13), centred.
    assert random_resized_crop_box(1000, 10, rng) == ((1000 - 13) // 2, 0, 13, 10)
    assert random_resized_crop_box(10, 1000, rng) == (0, (1000 - 13) // 2, 10, 13)


def test_train_and_val_transforms_give_the_target_size():
    image = Image.fromarray(np.arange(60 * 80 * 3, dtype=np.uint32).reshape(60, 80, 3).astype(np.uint8))
    out = train_transform(image, (32, 24), np.random.default_rng(1))
    assert out.size == (24, 32)
    # Validation keeps the aspect ratio and cuts the centre: a left/right split image stays split
    # at the centre column.
    halves = np.zeros((60, 80, 3), np.uint8)
    halves[:, 40:] = 255
    val = np.asarray(val_transform(Image.fromarray(halves), (20, 20)))
    assert val.shape == (20, 20, 3)
    assert (val[:, :9] == 0).all() and (val[:, 11:] == 255).all()


# --------------------------------------------------------------------------- the stream


def test_stream_shapes_labels_and_colours(tmp_path):
    data = _stream(_folder(tmp_path))
    assert data.classes == ("ant", "bee", "cat") and data.num_train == 18 and data.num_val == 6
    it = batches(data, "train", 4)
    assert it.augmented and len(it) == 4  # 18 // 4, the partial batch dropped
    x, y = _epoch(data)
    assert x.shape == (16, 3, 24, 20) and x.dtype == torch.uint8 and y.dtype == torch.int64
    val = batches(data, "val", 4)
    assert not val.augmented and len(val) == 2
    vx, vy = _epoch(data, "val")
    assert vx.shape == (6, 3, 24, 20) and vy.tolist() == [0, 0, 1, 1, 2, 2]
    names = list(COLOURS)
    for images, labels in ((x, y), (vx, vy)):
        for image, label in zip(images, labels, strict=True):
            colour = torch.tensor(COLOURS[names[int(label)]], dtype=torch.float32)
            assert (image.float().mean(dim=(1, 2)) - colour).abs().max() < 8  # JPEG is near, not exact


def test_stream_is_deterministic_for_a_seed_and_reshuffles_per_epoch(tmp_path):
    data = _stream(_folder(tmp_path))
    a, ya = _epoch(data, seed=3, epoch=0)
    b, yb = _epoch(data, seed=3, epoch=0)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    _, yc = _epoch(data, seed=3, epoch=1)
    _, yd = _epoch(data, seed=4, epoch=0)
    assert not torch.equal(ya, yc) and not torch.equal(ya, yd)


def test_stream_workers_give_the_same_batches(tmp_path):
    root = _folder(tmp_path)
    serial = _epoch(_stream(root), seed=1, epoch=2)
    parallel_data = load_data(
        ImageFolderData(root=str(root), cache="stream", workers=2), input_size=(24, 20), channels=3
    )
    assert isinstance(parallel_data, StreamData) and parallel_data.workers == 2
    parallel = _epoch(parallel_data, seed=1, epoch=2)
    assert torch.equal(serial[0], parallel[0]) and torch.equal(serial[1], parallel[1])


def test_stream_grey_images_and_statistics(tmp_path):
    data = load_data(
        ImageFolderData(root=str(_folder(tmp_path)), cache="stream", workers=0),
        input_size=(16, 16),
        channels=1,
    )
    x, _ = _epoch(data, "val", 3)
    assert x.shape == (6, 1, 16, 16)
    luma = [round(0.299 * r + 0.587 * g + 0.114 * b) for r, g, b in COLOURS.values()]
    assert abs(data.mean[0] * 255 - sum(luma) / 3) < 3  # the classes are balanced in train
    assert 0.05 < data.std[0] < 0.5


def test_stream_unreadable_file_names_it(tmp_path):
    root = _folder(tmp_path)
    (root / "train" / "ant" / "0.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match=r"cannot read the image .*ant/0\.png"):
        _epoch(_stream(root), batch_size=18)


def test_memory_batches_cover_the_split(tmp_path):
    data = load_dataset(
        ImageFolderData(root=str(_folder(tmp_path)), cache="memory"), input_size=(8, 8), channels=3
    )
    assert isinstance(data, Dataset)
    it = batches(data, "train", 5, seed=0, epoch=0)
    assert not it.augmented and len(it) == 3
    every = batches(data, "train", 5, drop_last=False)
    x, y = _epoch(data, batch_size=5, drop_last=False)
    assert len(every) == 4 and sorted(y.tolist()) == sorted(data.train_labels.tolist())
    assert not torch.equal(y, data.train_labels)  # shuffled
    assert torch.equal(_epoch(data, batch_size=5, drop_last=False)[0], x)  # the same order for a seed
    vx, vy = _epoch(data, "val", 4)
    assert torch.equal(vx, data.val_images) and torch.equal(vy, data.val_labels)
    with pytest.raises(ValueError, match="batch_size"):
        batches(data, "train", 0)
    with pytest.raises(ValueError, match="split"):
        batches(data, "test", 4)  # type: ignore[arg-type]


def _cifar(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, count in [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 3)]:
        batch = {
            b"labels": [int(v) for v in rng.integers(0, 10, count)],
            b"data": rng.integers(0, 256, (count, 3072)),
        }
        batch[b"data"] = batch[b"data"].astype(np.uint8)
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)
    return folder


def test_cifar_and_synthetic_stream(tmp_path):
    cifar = load_data(
        CifarData(root=str(_cifar(tmp_path)), cache="stream", workers=0), input_size=(48, 48), channels=3
    )
    assert isinstance(cifar, StreamData) and cifar.num_train == 20 and cifar.num_val == 3
    x, _ = _epoch(cifar, batch_size=8)
    assert x.shape == (16, 3, 48, 48)

    config = SyntheticData(num_train=10, num_val=4, num_classes=3, image_size=40, cache="stream", workers=0)
    synth = load_data(config, input_size=(32, 32), channels=3)
    assert isinstance(synth, StreamData)
    a, ya = _epoch(synth, batch_size=5)
    b, yb = _epoch(load_data(config, input_size=(32, 32), channels=3), batch_size=5)
    assert torch.equal(a, b) and torch.equal(ya, yb) and set(ya.tolist()) <= {0, 1, 2}


def test_synthetic_in_memory_is_seeded():
    a = load_dataset(SyntheticData(num_train=6, num_val=2, num_classes=4), input_size=(16, 12), channels=3)
    clear_dataset_cache()
    b = load_dataset(SyntheticData(num_train=6, num_val=2, num_classes=4), input_size=(16, 12), channels=3)
    c = load_dataset(
        SyntheticData(num_train=6, num_val=2, num_classes=4, seed=1), input_size=(16, 12), channels=3
    )
    assert (
        a is not b and torch.equal(a.train_images, b.train_images) and torch.equal(a.val_labels, b.val_labels)
    )
    assert a.train_images.shape == (6, 3, 16, 12) and a.num_classes == 4 and a.classes == ("0", "1", "2", "3")
    assert not torch.equal(a.train_images, c.train_images)


# --------------------------------------------------------------------------- cache: auto


def test_auto_picks_stream_over_the_budget(tmp_path):
    root = _folder(tmp_path)
    assert decoded_bytes(ImageFolderData(root=str(root)), (24, 20), 3) == 24 * 3 * 24 * 20
    tiny = ImageFolderData(root=str(root), memory_budget_gib=1e-6, workers=0)  # 1 KiB
    roomy = ImageFolderData(root=str(root), memory_budget_gib=1.0)
    assert cache_mode(tiny, (24, 20), 3) == "stream" and cache_mode(roomy, (24, 20), 3) == "memory"
    assert isinstance(load_data(tiny, input_size=(24, 20), channels=3), StreamData)
    assert isinstance(load_data(roomy, input_size=(24, 20), channels=3), Dataset)
    assert (
        cache_mode(ImageFolderData(root=str(root), memory_budget_gib=1e-6, cache="memory"), (24, 20), 3)
        == "memory"
    )
    # The in-memory path refuses a stream rather than filling the memory.
    with pytest.raises(
        SpecError, match=r"data\.cache: cache: auto chose stream \(33\.8 KiB .*cache: memory"
    ) as err:
        load_dataset(tiny, input_size=(24, 20), channels=3)
    assert err.value.path == "data.cache"


def test_bad_cache_value_names_file_line_and_choices(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text(
        "space: space.yaml\n"
        "data:\n"
        "  kind: imagefolder\n"
        "  root: images\n"
        "  cache: disk\n"
        "objectives: [{metric: macs, direction: minimize}]\n"
    )
    with pytest.raises(SpecError) as err:
        load_experiment(path)
    text = str(err.value)
    assert f"{path}:5" in text and "data.cache" in text and "disk" in text
    assert text.endswith("allowed: auto, memory, stream")
    path.write_text(path.read_text().replace("cache: disk", "workers: -1"))
    with pytest.raises(SpecError, match=rf"{path}:5: data\.workers"):
        load_experiment(path)


def test_synthetic_config_errors():
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticData(num_classes=1)
    with pytest.raises(ValueError, match="num_train"):
        SyntheticData(num_train=0)
    assert math.isclose(decoded_bytes(SyntheticData(num_train=3, num_val=1), (4, 5), 3), 4 * 3 * 20)
