"""Data: every data set the project reads, multi-crop views, and the DataModules that serve them.

* :mod:`datamodules.formats` — one module per on-disk layout: the release data sets (ModelNet40
  HDF5 and resampled, ScanObjectNN, ShapeNet55, ShapeNetPart, the few-shot folds) and users' own
  folders (meshes, point files), plus the packed memory-mapped storage they share.
* :mod:`datamodules.synthetic` — the embedded procedural shape set, its part-labelled twin and the
  shape builders.
* :mod:`datamodules.views` — multi-crop views and augmentations, batched on the device.
* :mod:`datamodules.splits` — validation splits carved from train and few-shot folds.
* :mod:`datamodules.streaming` — litdata shards: ``pointdwc data pack`` and the loader ``fit`` streams them with.
* At this level: the data-set interface (:mod:`~datamodules.dataset`, :mod:`~datamodules.errors`),
  layout detection, the cache, the resumable loader and the three DataModules (pretraining,
  classification, part segmentation).

Imports run down into :mod:`backbones` only (the crops use its grouping), never up into
:mod:`lightning_modules`. The classes below, the ones configs name (``class_path:
datamodules.ShapeNet55``), are imported lazily.
"""

from __future__ import annotations

from datamodules.moved import alias_moved_modules, lazy_attributes

_EXPORTS = {
    "ClassificationDataModule": "datamodules.classification",
    "CropSpec": "datamodules.views.crops",
    "DataError": "datamodules.errors",
    "GeneratedFewShot": "datamodules.fewshot_generator",
    "MeshFolder": "datamodules.formats.mesh_folder",
    "ModelNet40H5": "datamodules.formats.modelnet_h5",
    "ModelNetFewShot": "datamodules.formats.modelnet_fewshot",
    "ModelNetResampled": "datamodules.formats.modelnet_resampled",
    "MultiCrop": "datamodules.views.crops",
    "MultiCropConfig": "datamodules.views.crops",
    "PointCloudDataModule": "datamodules.pointcloud",
    "PointCloudSet": "datamodules.dataset",
    "PointCloudSplit": "datamodules.dataset",
    "PointFolder": "datamodules.formats.point_folder",
    "ScanObjectNN": "datamodules.formats.scanobjectnn",
    "ShapeNet55": "datamodules.formats.shapenet55",
    "ShapeNetPart": "datamodules.formats.shapenet_part",
    "ShardSet": "datamodules.streaming.shard_set",
    "SyntheticParts": "datamodules.synthetic.part_set",
    "SyntheticShapes": "datamodules.synthetic.shape_set",
}

__all__ = sorted(_EXPORTS)

MOVED = {
    "datamodules.modelnet_h5": "datamodules.formats.modelnet_h5",
    "datamodules.modelnet_resampled": "datamodules.formats.modelnet_resampled",
    "datamodules.scanobjectnn": "datamodules.formats.scanobjectnn",
    "datamodules.shapenet55": "datamodules.formats.shapenet55",
    "datamodules.shapenet_part": "datamodules.formats.shapenet_part",
    "datamodules.modelnet_fewshot": "datamodules.formats.modelnet_fewshot",
    "datamodules.fewshot_pickle": "datamodules.formats.fewshot_pickle",
    "datamodules.mesh_folder": "datamodules.formats.mesh_folder",
    "datamodules.point_files": "datamodules.formats.point_files",
    "datamodules.packed": "datamodules.formats.packed",
    "datamodules.synthetic_parts": "datamodules.synthetic.part_set",
    "datamodules.procedural_stream": "datamodules.synthetic.stream",
    "datamodules.crops": "datamodules.views.crops",
    "datamodules.augment": "datamodules.views.augment",
    "datamodules.validation_split": "datamodules.splits.validation_split",
    "datamodules.fewshot_fold": "datamodules.splits.fewshot_fold",
    "datamodules.shapes": "datamodules.synthetic.shapes",
    "datamodules.part_split": "datamodules.formats.part_split",
    "datamodules.resampled_clouds": "datamodules.formats.resampled_clouds",
    "datamodules.data_command": "lightning_modules.commands.data",
}
"""Module paths before the sub-packages (old -> new), importable until the next release."""

alias_moved_modules(MOVED)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
