"""Datasets: one interface (uint8 images served at any resolution) over several sources."""

from .base import ArraySource, BatchSampler, DatasetError, ImageSource, to_float
from .cifar import CIFAR10, load_cifar10
from .digits import Digits
from .folder import FolderSource
from .imaging import DatasetWarning
from .kinds import DatasetKind, dataset_kinds, register_dataset
from .lsun import LSUNSource, export_lsun
from .npz import NpySource, load_image_array
from .registry import DATASET_KINDS, open_dataset, parse_spec
from .synthetic import SyntheticShapes, synthetic_images

__all__ = ["CIFAR10", "DATASET_KINDS", "ArraySource", "Digits", "BatchSampler", "DatasetError", "DatasetKind",
           "DatasetWarning", "FolderSource", "ImageSource", "LSUNSource", "NpySource", "SyntheticShapes",
           "dataset_kinds", "export_lsun", "load_cifar10", "load_image_array", "open_dataset", "parse_spec",
           "register_dataset", "synthetic_images", "to_float"]
