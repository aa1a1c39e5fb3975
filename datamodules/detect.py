"""Recognise a data set's layout from its folder (``--data.root``, ``--probe.root``, ``data check``)."""

from __future__ import annotations

import os
from pathlib import Path

from datamodules.dataset import PointCloudSet, existing_root
from datamodules.errors import DataError


def known_sets() -> dict[str, type[PointCloudSet]]:
    """The data set classes by ``--format`` name, most specific layout first (a folder of files matches almost anything)."""
    from datamodules.formats.mesh_folder import MeshFolder
    from datamodules.formats.modelnet_h5 import ModelNet40H5
    from datamodules.formats.modelnet_fewshot import ModelNetFewShot
    from datamodules.formats.modelnet_resampled import ModelNetResampled
    from datamodules.formats.point_folder import PointFolder
    from datamodules.formats.scanobjectnn import ScanObjectNN
    from datamodules.formats.shapenet55 import ShapeNet55
    from datamodules.formats.shapenet_part import ShapeNetPart
    from datamodules.streaming.shard_set import ShardSet

    return {
        "shards": ShardSet,
        "modelnet40_h5": ModelNet40H5,
        "modelnet_resampled": ModelNetResampled,
        "scanobjectnn": ScanObjectNN,
        "shapenet55": ShapeNet55,
        "shapenetpart": ShapeNetPart,
        "modelnet_fewshot": ModelNetFewShot,
        "point_files": PointFolder,  # a folder holding point files (a pure mesh folder is left to MeshFolder)
        "mesh_folder": MeshFolder,
    }


def detect_datasets(root: str | os.PathLike) -> list[PointCloudSet]:
    """Every data set found in ``root`` (e.g. ModelNet40 and ModelNet10 of one folder)."""
    path = existing_root(root)
    for cls in known_sets().values():
        found = cls.detect(path)
        if found:
            return found
    return []


LAYOUTS = (
    "ModelNet40 h5 (shape_names.txt, train_files.txt), modelnet40_normal_resampled "
    "(modelnet40_shape_names.txt), ScanObjectNN (main_split/, main_split_nobg/), "
    "shards of pointdwc data pack (pointdwc_shards.json, train/index.json), "
    "ShapeNet55 (ShapeNet-55/train.txt, shapenet_pc/), ShapeNetPart (synsetoffset2category.txt, "
    "train_test_split/), ModelNetFewshot (5way_10shot/0.pkl), a mesh folder (<class>/*.obj|off|stl|ply|glb), "
    "or a folder of point files and meshes (.ply .pcd .npy .npz .txt .xyz .pts .csv .las .laz .obj .off .stl .glb)"
)


def dataset_from_root(root: str | os.PathLike, field: str) -> PointCloudSet:
    """The data set in ``root`` (the first, if it holds several); DataError naming ``field`` if none.

    An object-store URL (``s3://bucket/path``) is taken for packed shards and handed to litdata.
    """
    from datamodules.streaming.layout import is_url

    if is_url(str(root)):
        from datamodules.streaming.shard_set import ShardSet

        return ShardSet(str(root))
    if not Path(root).expanduser().is_dir():
        raise DataError(f"{field}={root}: folder does not exist")
    found = detect_datasets(root)
    if not found:
        raise DataError(
            f"{field}={root}: no known data set layout in this folder; expected {LAYOUTS}, "
            f"or name the data set with its class path (see `pointdwc data check {root}`)"
        )
    return found[0]


def resolve_dataset(
    dataset: PointCloudSet | None, root: str | None, dataset_field: str, root_field: str
) -> PointCloudSet:
    """``dataset``, the set detected in ``root``, or (neither given) the embedded synthetic set."""
    if dataset is not None and root is not None:
        raise DataError(f"give either {dataset_field} or {root_field}, not both ({root_field}={root})")
    if dataset is not None:
        return dataset
    if root is not None:
        return dataset_from_root(root, root_field)
    from datamodules.synthetic.shape_set import SyntheticShapes

    return SyntheticShapes()
