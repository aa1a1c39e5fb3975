"""Data: the data sets (one class per on-disk layout), multi-crop views and the DataModule."""

from datamodules.classification import ClassificationDataModule
from datamodules.crops import CropSpec, MultiCrop, MultiCropConfig
from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.errors import DataError
from datamodules.fewshot_generator import GeneratedFewShot
from datamodules.mesh_folder import MeshFolder
from datamodules.modelnet_fewshot import ModelNetFewShot
from datamodules.modelnet_h5 import ModelNet40H5
from datamodules.modelnet_resampled import ModelNetResampled
from datamodules.pointcloud import PointCloudDataModule
from datamodules.scanobjectnn import ScanObjectNN
from datamodules.shapenet55 import ShapeNet55
from datamodules.shapenet_part import ShapeNetPart
from datamodules.synthetic import SyntheticShapes
from datamodules.synthetic_parts import SyntheticParts

__all__ = [
    "ClassificationDataModule",
    "CropSpec",
    "DataError",
    "GeneratedFewShot",
    "MeshFolder",
    "ModelNetFewShot",
    "ModelNet40H5",
    "ModelNetResampled",
    "MultiCrop",
    "MultiCropConfig",
    "PointCloudDataModule",
    "PointCloudSet",
    "PointCloudSplit",
    "ScanObjectNN",
    "ShapeNet55",
    "ShapeNetPart",
    "SyntheticParts",
    "SyntheticShapes",
]
