"""Datasets for the search: configs (discriminated on ``kind``), an in-memory loader and a stream.

>>> from archsearch.data import DigitsData, load_dataset
>>> data = load_dataset(DigitsData(), input_size=(32, 32), channels=3)
>>> data.train_images.shape, data.train_images.dtype      # ([1437, 3, 32, 32], torch.uint8)

Both kinds of data are read the same way, one epoch at a time::

    data = load_data(config, input_size=(224, 224), channels=3)   # Dataset or StreamData
    for images, labels in batches(data, "train", 256, epoch=e, seed=0, device="cuda"):
        ...   # uint8 [256, 3, 224, 224] and int64 [256], already on the device
"""

from ._config import CACHE_MODES, CifarData, DataConfig, DigitsData, ImageFolderData, SyntheticData
from ._dataset import Dataset
from ._imagefolder import IMAGE_EXTENSIONS
from ._load import cache_mode, clear_dataset_cache, decoded_bytes, load_data, load_dataset
from ._stream import Batches, StreamData, batches
from ._transforms import random_resized_crop_box, train_transform, val_transform

__all__ = [
    "CACHE_MODES",
    "IMAGE_EXTENSIONS",
    "Batches",
    "CifarData",
    "DataConfig",
    "Dataset",
    "DigitsData",
    "ImageFolderData",
    "StreamData",
    "SyntheticData",
    "batches",
    "cache_mode",
    "clear_dataset_cache",
    "decoded_bytes",
    "load_data",
    "load_dataset",
    "random_resized_crop_box",
    "train_transform",
    "val_transform",
]
