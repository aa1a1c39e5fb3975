"""Data: readers, the synthetic shape set, multi-crop views and the DataModule."""

from datamodules.crops import CropSpec, MultiCrop, MultiCropConfig
from datamodules.errors import DataError
from datamodules.pointcloud import PointCloudDataModule, SyntheticConfig

__all__ = ["CropSpec", "DataError", "MultiCrop", "MultiCropConfig", "PointCloudDataModule", "SyntheticConfig"]
