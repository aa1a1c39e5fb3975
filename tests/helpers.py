"""Tiny model / data builders shared by the tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl

from backbones import DGCNN, PointBackbone, PointNet, PointViT
from datamodules import CropSpec, MultiCropConfig, PointCloudDataModule, PointCloudSet
from lightning_modules.pretrain.dwc import DistillationWithContrast, OptimConfig
from lightning_modules.pretrain.heads import HeadConfig


def tiny_module(backbone: PointBackbone | None = None, **optim: float) -> DistillationWithContrast:
    """A PoinT-ViT (or ``backbone``) small enough to train a few steps in a second."""
    return DistillationWithContrast(
        backbone=backbone or PointViT(embed_dim=32, depth=1, num_heads=2, group_size=8, encoder_dims=(16, 32)),
        head=HeadConfig(out_dim=64, hidden_dim=64, bottleneck_dim=32, contrast_dim=16),
        optim=OptimConfig(**{"warmup_epochs": 1, **optim}),
        batch_size=4,
    )


def tiny_pointnet() -> PointNet:
    """A PointNet (BatchNorm after every layer) a few channels wide."""
    return PointNet(dims=(8, 16, 32))


def tiny_dgcnn() -> DGCNN:
    """A DGCNN (BatchNorm over edges and points, dynamic graph) a few channels wide."""
    return DGCNN(k=4, edge_dims=(8, 8, 16), emb_dims=16)


def tiny_data(root: Path | None = None, batch_size: int = 4, dataset: PointCloudSet | None = None) -> PointCloudDataModule:
    """Multi-crop data from a fixture folder (or data set): 2×128 global, 2×32 local crops."""
    return PointCloudDataModule(
        dataset=dataset,
        root=None if root is None else str(root),
        batch_size=batch_size,
        num_points=512,
        crops=MultiCropConfig(global_crops=CropSpec(2, 128, (0.5, 1.0)), local_crops=CropSpec(2, 32, (0.1, 0.4))),
    )


def tiny_trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    """CPU trainer without logger, progress bar or checkpoints."""
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    return pl.Trainer(**{**defaults, **kwargs})


def fit_seeded(
    root: Path,
    data: PointCloudDataModule,
    callbacks: list | None = None,
    ckpt_path: str | None = None,
    make_model: Callable[[], DistillationWithContrast] = tiny_module,
    **trainer_kw,
) -> tuple[DistillationWithContrast, pl.Trainer]:
    """Seed 0, a fresh ``make_model()`` (:func:`tiny_module`), fit on ``data`` (optionally resumed)."""
    pl.seed_everything(0)
    model = make_model()
    trainer = tiny_trainer(root, callbacks=callbacks or [], **trainer_kw)
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return model, trainer


def assert_mid_epoch_resume_is_exact(
    tmp_path: Path,
    make_data: Callable[[], PointCloudDataModule],
    stop_step: int,
    total_steps: int,
    make_model: Callable[[], DistillationWithContrast] = tiny_module,
) -> None:
    """Two epochs straight through vs stopped after ``stop_step`` and resumed: bit-identical
    (every tensor of the state dict: student, teacher, their BatchNorm statistics, centre)."""
    import torch

    class StopAt(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == stop_step:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                trainer.should_stop = True

    straight, t_straight = fit_seeded(tmp_path / "a", make_data(), make_model=make_model, max_epochs=2)
    fit_seeded(tmp_path / "b", make_data(), [StopAt()], make_model=make_model, max_epochs=2)
    resumed, t_resumed = fit_seeded(
        tmp_path / "c", make_data(), ckpt_path=str(tmp_path / "mid.ckpt"), make_model=make_model, max_epochs=2
    )
    assert t_straight.global_step == t_resumed.global_step == total_steps
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def split_reads(monkeypatch, cls: type, method: str) -> list[tuple[object, str]]:
    """Spy on ``cls.method(split)``, how a data module reads a split: (reader, split) of every call, in order."""
    reads: list[tuple[object, str]] = []
    real = getattr(cls, method)

    def spy(self, split: str, *args, **kwargs):
        reads.append((self, split))
        return real(self, split, *args, **kwargs)

    monkeypatch.setattr(cls, method, spy)
    return reads


def probe_reference(backbone: PointBackbone, probe) -> tuple[float, float, dict]:
    """SVM and kNN accuracy (%) on features computed here, for a :class:`LinearProbe` to equal, and those features.

    The features are the backbone's own eval-mode ``global_feature`` of the first ``probe.num_points`` points of
    each stored cloud (in the probe's batch size, so bit for bit); the classifiers are fitted with the probe's C
    (``probe.last.svm_c``), k and temperature.
    """
    import numpy as np
    import torch

    from lightning_modules.evaluation.knn import weighted_knn
    from lightning_modules.evaluation.linear_svm import linear_svm

    backbone.eval()
    feats, labels = {}, {}
    for split in ("train", "test"):
        loaded = probe._split(split)
        points = np.ascontiguousarray(loaded.points[:, : probe.num_points])
        with torch.no_grad():
            chunks = [backbone(torch.from_numpy(points[i : i + probe.batch_size])).global_feature
                      for i in range(0, len(points), probe.batch_size)]
        feats[split], labels[split] = torch.cat(chunks).float().numpy(), loaded.labels
    args = (feats["train"], labels["train"], feats["test"], labels["test"])
    svm = linear_svm(*args, c=probe.last.svm_c)
    knn = weighted_knn(*args, probe.knn_k, probe.knn_temperature)
    return svm.acc, knn.acc, feats


def teacher_of(ckpt: Path, make_model: Callable[[], DistillationWithContrast] = tiny_module):
    """The checkpoint's teacher backbone, loaded the plain way (``load_state_dict`` of the whole module), eval mode."""
    import torch

    module = make_model()
    module.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    return module.eval().teacher.backbone


def max_relative_difference(got, expected) -> float:
    """``max |got - expected| / max |expected|``, written out here apart from the export's own check."""
    import numpy as np

    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def export_every_format(ckpt: Path, out: Path, num_points: int) -> dict[str, Path]:
    """``pointdwc export`` of ``ckpt`` as .pt, folder, .onnx and .pt2 (``num_points`` per cloud) into ``out``."""
    from lightning_modules.commands.export import main as export_main

    out.mkdir(parents=True, exist_ok=True)
    paths = {suffix: out / f"encoder{suffix}" for suffix in (".pt", "", ".onnx", ".pt2")}
    for path in paths.values():
        assert export_main(["--ckpt_path", str(ckpt), "--out", str(path), "--num_points", str(num_points)]) == 0
    return paths


def assert_every_format_reproduces(paths: dict[str, Path], teacher, clouds) -> dict[str, float]:
    """Run each export of :func:`export_every_format` on ``clouds`` (``(B, N, 3)`` numpy, N the export's points)
    and compare with ``teacher``: .pt and folder exactly, the graphs within 1e-4 relative, also at batch 1.
    Returns the graphs' measured maximum relative differences."""
    import numpy as np
    import onnxruntime
    import torch

    from backbones import load_pretrained

    points = torch.from_numpy(np.ascontiguousarray(clouds, dtype=np.float32))
    with torch.no_grad():
        expected = teacher.eval()(points).global_feature
        for suffix in (".pt", ""):
            assert torch.equal(load_pretrained(paths[suffix])(points).global_feature, expected), suffix
        program = torch.export.load(paths[".pt2"]).module()
        graph_runs = {".pt2": lambda p: program(p).numpy()}
    session = onnxruntime.InferenceSession(str(paths[".onnx"]), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", points.shape[1], 3]  # dynamic batch, fixed points per cloud
    graph_runs[".onnx"] = lambda p: session.run(None, {"points": p.numpy()})[0]
    measured = {}
    for suffix, run in graph_runs.items():
        with torch.no_grad():
            diffs = [max_relative_difference(run(points), expected),
                     max_relative_difference(run(points[:1]), expected[:1])]
        assert max(diffs) <= 1e-4, (suffix, diffs)
        measured[suffix] = max(diffs)
    return measured
