"""Writers of small data folders in exactly the official layouts (names, keys, dtypes, shapes).

Used by the tests and by ``benchmarks/loader.py``; none of the real data sets can be
downloaded here, so these are how every reader is exercised.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def blob_clouds(n: int, points: int, num_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Easy labelled clouds: class c is an ellipsoid with axis ratios depending on c."""
    labels = np.arange(n) % num_classes
    x = rng.normal(size=(n, points, 3))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    scales = np.stack([1.0 + 0.6 * labels, 1.0 + 0.3 * (labels % 2), np.ones(n)], axis=1)[:, None, :]
    x = x * scales
    x /= np.linalg.norm(x, axis=-1).max(axis=1)[:, None, None]
    return x.astype(np.float32), labels


def write_modelnet_h5(root: Path, class_names: list[str], splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """``modelnet40_ply_hdf5_2048``: shape_names.txt, {train,test}_files.txt, ply_data_*.h5."""
    import h5py

    root.mkdir(parents=True, exist_ok=True)
    (root / "shape_names.txt").write_text("\n".join(class_names) + "\n")
    for split, (data, label) in splits.items():
        name = f"ply_data_{split}0.h5"
        with h5py.File(root / name, "w") as f:
            f.create_dataset("data", data=data.astype(np.float32))
            f.create_dataset("label", data=label.astype(np.uint8).reshape(-1, 1))
        (root / f"{split}_files.txt").write_text(f"data/modelnet40_ply_hdf5_2048/{name}\n")
    return root


def rewrite_h5(path: Path, **fields: np.ndarray | None) -> None:
    """Replace (or, with ``None``, drop) datasets of an h5 file: how tests break a shard."""
    import h5py

    with h5py.File(path, "r") as f:
        current = {k: f[k][...] for k in f}
    current.update(fields)
    with h5py.File(path, "w") as f:
        for k, v in current.items():
            if v is not None:
                f.create_dataset(k, data=v)


def write_modelnet_resampled(
    root: Path,
    class_names: list[str],
    per_class: dict[str, int],
    points: int,
    rng: np.random.Generator,
    modelnet10: list[str] | None = None,
) -> Path:
    """``modelnet40_normal_resampled``: <class>/<class>_NNNN.txt ("x,y,z,nx,ny,nz" rows) and the listings.

    ``per_class`` maps split -> shapes per class; ``modelnet10`` names the classes of the
    ``modelnet10_*`` listings written beside the ModelNet40 ones.
    """
    root.mkdir(parents=True, exist_ok=True)
    listings: dict[str, list[str]] = {split: [] for split in per_class}
    for label, cls in enumerate(class_names):
        (root / cls).mkdir(exist_ok=True)
        number = 0
        for split, count in per_class.items():
            clouds, _ = blob_clouds(count, points, len(class_names), rng)
            clouds = clouds + 0.1 * label
            for cloud in clouds:
                number += 1
                name = f"{cls}_{number:04d}"
                normals = cloud / np.linalg.norm(cloud, axis=1, keepdims=True)
                np.savetxt(root / cls / f"{name}.txt", np.concatenate([cloud, normals], 1), fmt="%.6f", delimiter=",")
                listings[split].append(name)
    (root / "modelnet40_shape_names.txt").write_text("\n".join(class_names) + "\n")
    for split, names in listings.items():
        (root / f"modelnet40_{split}.txt").write_text("\n".join(names) + "\n")
    if modelnet10:
        (root / "modelnet10_shape_names.txt").write_text("\n".join(modelnet10) + "\n")
        for split, names in listings.items():
            keep = [n for n in names if n.rpartition("_")[0] in modelnet10]
            (root / f"modelnet10_{split}.txt").write_text("\n".join(keep) + "\n")
    return root


SCANOBJECTNN_FILES = {
    "obj_bg": ("main_split", ""),
    "obj_only": ("main_split_nobg", ""),
    "pb_t50_rs": ("main_split", "_augmentedrot_scale75"),
}


def write_scanobjectnn(root: Path, per_split: dict[str, int], rng: np.random.Generator, points: int = 2048) -> Path:
    """ScanObjectNN ``h5_files``: main_split{,_nobg}/{training,test}_objectdataset[_augmentedrot_scale75].h5.

    Keys as released: ``data`` (n, 2048, 3) float32, ``label`` (n,) int64, ``mask`` (n, 2048) int64.
    """
    import h5py

    for folder, suffix in SCANOBJECTNN_FILES.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for split, prefix in (("train", "training"), ("test", "test")):
            data, label = blob_clouds(per_split[split], points, 15, rng)
            with h5py.File(root / folder / f"{prefix}_objectdataset{suffix}.h5", "w") as f:
                f.create_dataset("data", data=data)
                f.create_dataset("label", data=label.astype(np.int64))
                f.create_dataset("mask", data=np.zeros(data.shape[:2], dtype=np.int64))
    return root


SHAPENET_SYNSETS = ["02691156", "03001627", "04379243", "02958343"]


def write_shapenet55(
    root: Path,
    per_split: dict[str, int],
    rng: np.random.Generator,
    points: int = 8192,
    synsets: list[str] | None = None,
) -> Path:
    """Point-BERT's ShapeNet55: ShapeNet-55/{train,test}.txt and shapenet_pc/<synset>-<id>.npy (points, 3) float32."""
    synsets = synsets or SHAPENET_SYNSETS
    (root / "ShapeNet-55").mkdir(parents=True, exist_ok=True)
    (root / "shapenet_pc").mkdir(exist_ok=True)
    for split, count in per_split.items():
        clouds, labels = blob_clouds(count, points, len(synsets), rng)
        names = []
        for cloud, label in zip(clouds, labels, strict=True):
            name = f"{synsets[label]}-{rng.integers(2**63):016x}{rng.integers(2**63):016x}.npy"
            np.save(root / "shapenet_pc" / name, 0.5 * cloud + 0.2)  # not normalised, as shipped
            names.append(name)
        (root / "ShapeNet-55" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def write_mesh_folder(
    root: Path, per_class: int = 4, extensions: tuple[str, ...] = (".obj", ".off", ".stl", ".ply", ".glb")
) -> Path:
    """``<root>/<class>/*.ext``: boxes, spheres and cylinders of varying size, file types rotating."""
    import trimesh

    makers = {
        "box": lambda i: trimesh.creation.box(extents=(1.0 + 0.2 * i, 2.0, 0.5)),
        "sphere": lambda i: trimesh.creation.icosphere(subdivisions=2, radius=1.0 + 0.1 * i),
        "cylinder": lambda i: trimesh.creation.cylinder(radius=0.3, height=2.0 + 0.2 * i, sections=16),
    }
    for name, make in makers.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make(i).export(str(root / name / f"{name}_{i:04d}{extensions[i % len(extensions)]}"))
    return root


def lzf_literals(data: bytes) -> bytes:
    """LZF "compression" made of literal runs only: a valid stream any LZF decoder reads."""
    out = bytearray()
    for start in range(0, len(data), 32):
        chunk = data[start : start + 32]
        out += bytes([len(chunk) - 1]) + chunk
    return bytes(out)


def write_pcd(path: Path, points: np.ndarray, data: str = "ascii") -> Path:
    """A PCL ``.pcd`` file with fields x y z intensity (float32), DATA ascii, binary or binary_compressed."""
    pts = np.concatenate([points, np.linspace(0, 1, len(points))[:, None]], axis=1).astype(np.float32)
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\n"
        f"TYPE F F F F\nCOUNT 1 1 1 1\nWIDTH {len(pts)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(pts)}\n"
        f"DATA {data}\n"
    )
    if data == "ascii":
        body = "\n".join(" ".join(f"{v:.8g}" for v in row) for row in pts).encode() + b"\n"
    elif data == "binary":
        body = pts.astype("<f4").tobytes()
    else:  # one field after the other, LZF-compressed, sizes first
        raw = np.ascontiguousarray(pts.T).astype("<f4").tobytes()
        packed = lzf_literals(raw)
        body = np.array([len(packed), len(raw)], dtype="<u4").tobytes() + packed
    path.write_bytes(header.encode() + body)
    return path


SHAPENETPART_RELEASE = [
    ("Airplane", "02691156"), ("Bag", "02773838"), ("Cap", "02954340"), ("Car", "02958343"),
    ("Chair", "03001627"), ("Earphone", "03261776"), ("Guitar", "03467517"), ("Knife", "03624134"),
    ("Lamp", "03636649"), ("Laptop", "03642806"), ("Motorbike", "03790512"), ("Mug", "03797390"),
    ("Pistol", "03948459"), ("Rocket", "04099429"), ("Skateboard", "04225987"), ("Table", "04379243"),
]
"""synsetoffset2category.txt of the release, in its order."""

SHAPENETPART_FIXTURE_PARTS = {"02691156": (0, 4), "02773838": (4, 2), "03001627": (12, 4)}
"""Synset -> (first global part id, number of parts) of the categories the fixture has shapes of."""


def write_shapenet_part(
    root: Path,
    per_split: dict[str, int],
    rng: np.random.Generator,
    listed: list[tuple[str, str]] | None = None,
    points: tuple[int, int] = (200, 400),
) -> Path:
    """``shapenetcore_partanno_segmentation_benchmark_v0_normal``: synsetoffset2category.txt (``listed``,
    default all 16 lines of the release), train_test_split/shuffled_<split>_file_list.json and
    <synset>/<token>.txt rows "x y z nx ny nz part" (global part id, 6 decimals as released).

    Shapes of Airplane, Bag and Chair (``per_split`` per category and split), ``points`` original
    points each (a varying count, as released), not normalised; a shape's parts are slabs along
    y, every part of its category present.
    """
    listed = listed or SHAPENETPART_RELEASE
    root.mkdir(parents=True, exist_ok=True)
    (root / "synsetoffset2category.txt").write_text("".join(f"{name}\t{synset}\n" for name, synset in listed))
    (root / "train_test_split").mkdir(exist_ok=True)
    for split, count in per_split.items():
        entries = []
        for synset, (first, parts) in SHAPENETPART_FIXTURE_PARTS.items():
            (root / synset).mkdir(exist_ok=True)
            for _ in range(count):
                token = f"{rng.integers(2**63):016x}{rng.integers(2**63):016x}"
                n = int(rng.integers(*points))
                xyz = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + 0.3
                normals = rng.normal(size=(n, 3))
                normals /= np.linalg.norm(normals, axis=1, keepdims=True)
                rank = np.argsort(np.argsort(xyz[:, 1]))
                part = first + rank * parts // n
                rows = np.concatenate([xyz, normals, part[:, None]], axis=1)
                np.savetxt(root / synset / f"{token}.txt", rows, fmt="%.6f")
                entries.append(f"shape_data/{synset}/{token}")
        order = rng.permutation(len(entries))
        path = root / "train_test_split" / f"shuffled_{split}_file_list.json"
        path.write_text(json.dumps([entries[k] for k in order]))
    return root


def shapenet_part_rows(root: Path, name: str) -> int:
    """Rows (original points) of the release file of split-list entry ``name`` (``shape_data/<synset>/<token>``)."""
    _, synset, token = name.split("/")
    return len((root / synset / f"{token}.txt").read_text().splitlines())


def write_modelnet_fewshot(
    root: Path,
    settings: list[tuple[int, int]],
    folds: int,
    points: int = 64,
    num_classes: int = 8,
    train_per_class: int = 12,
    test_per_class: int = 22,
    eval_sample: int = 20,
    seed: int = 0,
) -> Path:
    """``ModelNetFewshot/<W>way_<S>shot/<fold>.pkl`` as Point-BERT's generator writes them.

    As that script does: the source clouds are float32 (P, 6) arrays (xyz and normals) with
    int32 labels of shape (1,); per class a train and a test pool; for each fold the class
    keys are shuffled with Python's ``random``, the first W taken, S train and ``eval_sample``
    test entries ``(points, i, key)`` appended (``i`` a Python int, ``key`` the numpy label
    ``label[0]``), both lists shuffled, and ``{'train': ..., 'test': ...}`` pickled with the
    default protocol into ``f'{way}way_{shot}shot/{fold}.pkl'``.
    """
    import pickle
    import random

    rng = np.random.default_rng(seed)
    random.seed(seed)
    pools: dict[str, dict[np.int32, list[np.ndarray]]] = {"train": {}, "test": {}}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        clouds, labels = blob_clouds(per_class * num_classes, points, num_classes, rng)
        for cloud, label in zip(clouds, labels):
            normals = cloud / np.linalg.norm(cloud, axis=1, keepdims=True)
            row = np.concatenate([cloud * 3.0 + 0.5, normals], axis=1).astype(np.float32)  # not unit-sphere, as released
            key = np.asarray([label], dtype=np.int32)[0]
            pools[split].setdefault(key, []).append(row)
    for way, shot in settings:
        folder = root / f"{way}way_{shot}shot"
        folder.mkdir(parents=True, exist_ok=True)
        for fold in range(folds):
            train_dataset, test_dataset = [], []
            keys = list(pools["train"].keys())
            random.shuffle(keys)
            for i, key in enumerate(keys[:way]):
                train_list = list(pools["train"][key])
                random.shuffle(train_list)
                train_dataset += [(data, i, key) for data in train_list[:shot]]
                test_list = list(pools["test"][key])
                random.shuffle(test_list)
                test_dataset += [(data, i, key) for data in test_list[:eval_sample]]
            random.shuffle(train_dataset)
            random.shuffle(test_dataset)
            with open(folder / f"{fold}.pkl", "wb") as f:
                pickle.dump({"train": train_dataset, "test": test_dataset}, f)
    return root
