"""Datasets for the search: configs (discriminated on ``kind``) and one in-memory loader.

>>> from archsearch.data import DigitsData, load_dataset
>>> data = load_dataset(DigitsData(), input_size=(32, 32), channels=3)
>>> data.train_images.shape, data.train_images.dtype      # ([1437, 3, 32, 32], torch.uint8)
"""

from ._config import CifarData, DataConfig, DigitsData, ImageFolderData
from ._dataset import Dataset
from ._imagefolder import IMAGE_EXTENSIONS
from ._load import clear_dataset_cache, load_dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "CifarData",
    "DataConfig",
    "Dataset",
    "DigitsData",
    "ImageFolderData",
    "clear_dataset_cache",
    "load_dataset",
]
