"""Linear-probe evaluation of frozen features: a linear SVM and a kNN classifier.

The probe data set is independent of the pretraining data (the paper pretrains on
ShapeNet55 and probes ModelNet40 and ScanObjectNN): any :class:`PointCloudSet` by class
path (``probe.data``), a folder whose layout is detected (``probe.root``), or the
embedded synthetic set. Several probes can run side by side (extra ``LinearProbe``
callbacks with a ``name``). Each rank embeds its own share of the clouds (no padding,
so no sample counts twice); rank 0 fits the classifiers and shares the accuracies.

The classifiers are plain functions on numpy features in their own modules
(:func:`~lightning_modules.evaluation.linear_svm.linear_svm`,
:func:`~lightning_modules.evaluation.knn.weighted_knn`), so benchmarks can call them without
Lightning; :func:`extract_features` embeds clouds with a frozen backbone for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as torch_dist
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from backbones.base import PointBackbone
from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.detect import resolve_dataset
from datamodules.errors import DataError
from datamodules.splits.per_class_subset import per_class_subset
from lightning_modules.dist import gather_objects, is_distributed, print_rank_zero, rank, world_size
from lightning_modules.evaluation.feature_cache import FeatureCache
from lightning_modules.evaluation.knn import weighted_knn
from lightning_modules.evaluation.linear_svm import SVM_C_GRID, check_svm_c, cross_validate_svm_c, linear_svm
from lightning_modules.evaluation.metrics import format_metric


FAST_DEV_RUN_PER_CLASS = 4
"""Shapes per class of each split the probe uses under ``trainer.fast_dev_run``."""


@dataclass
class ProbeResult:
    """Accuracies in percent on the probe's test split."""

    svm_acc: float
    svm_macc: float
    """Mean over the test split's classes of the per-class accuracy (recall)."""
    svm_c: float
    """The SVM's C (chosen by cross-validation with ``svm_c="auto"``)."""
    knn_acc: float
    knn_macc: float
    step: int
    """Optimizer step of the network that was probed."""

    def metrics(self) -> dict[str, float]:
        """The logged values by metric name (without the ``probe/`` prefix)."""
        return {
            "svm_acc": self.svm_acc,
            "svm_macc": self.svm_macc,
            "knn_acc": self.knn_acc,
            "knn_macc": self.knn_macc,
            "svm_c": self.svm_c,
        }


@torch.no_grad()
def extract_features(
    backbone: PointBackbone, points: np.ndarray, batch_size: int, device: torch.device
) -> np.ndarray:
    """Global features (n, C) of clouds (n, P, 3), in eval mode, float32."""
    was_training = backbone.training
    backbone.eval()
    feats = []
    try:
        for start in range(0, len(points), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(points[start : start + batch_size])).to(device)
            feats.append(backbone(chunk).global_feature.float().cpu())
    finally:
        backbone.train(was_training)
    if not feats:
        return np.zeros((0, backbone.out_dim), dtype=np.float32)
    return torch.cat(feats).numpy()


def _gather_rows(local: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and their sample indices from every rank, each sample exactly once."""
    if not is_distributed():
        return local, index
    parts = gather_objects((local, index))
    feats = np.concatenate([p[0] for p in parts])
    idx = np.concatenate([p[1] for p in parts])
    order = np.argsort(idx, kind="stable")
    return feats[order], idx[order]


class LinearProbe(pl.Callback):
    """Probe the frozen (teacher) backbone with a linear SVM and kNN.

    Runs every ``every_n_epochs`` epochs and at the end of ``fit``, and in ``test``; in
    ``validate`` only :meth:`cross_validate` on the train split (the test split is not read).
    Logs ``probe/svm_acc``, ``probe/svm_macc`` (mean per-class), ``probe/knn_acc``,
    ``probe/knn_macc`` (percent) and ``probe/svm_c``, or ``probe/<name>/...``. Warns when
    the SVM is at chance (with the collapse monitor's verdict, if it has one).

    Args:
        data: the probe data set by class path (e.g. ``datamodules.ModelNet40H5``).
        root: shortcut: a data folder whose layout is detected (instead of ``data``).
            Neither given: the embedded synthetic set.
        name: distinguishes the metrics of several probes (``probe/<name>/svm_acc``).
        every_n_epochs: probe during ``fit`` every this many epochs (0: only at the end).
        num_points: points per cloud fed to the backbone (the first ones stored).
        use_teacher: probe the teacher (True, the paper's choice) or the student.
        svm_c: regularisation C of the linear SVM, or ``auto``: chosen by stratified
            cross-validation on the probe's train split (the test split is predicted once).
        svm_folds: cross-validation folds of ``svm_c: auto``.
        knn_k: neighbours of the kNN classifier.
        knn_temperature: temperature of the kNN vote weights.
        batch_size: clouds per forward pass while embedding.
        max_per_class: use at most this many shapes of each class of each split (a seeded subset,
            named in the protocol line) to bound the probe's cost; None: every shape. Under
            ``trainer.fast_dev_run`` the probe uses at most :data:`FAST_DEV_RUN_PER_CLASS`.
    """

    def __init__(
        self,
        data: PointCloudSet | None = None,
        root: str | None = None,
        name: str | None = None,
        every_n_epochs: int = 5,
        num_points: int = 1024,
        use_teacher: bool = True,
        svm_c: float | Literal["auto"] = "auto",
        svm_folds: int = 5,
        knn_k: int = 20,
        knn_temperature: float = 0.07,
        batch_size: int = 128,
        max_per_class: int | None = None,
    ) -> None:
        super().__init__()
        field = f"probe[{name}]" if name else "probe"
        self.data = resolve_dataset(data, root, f"{field}.data", f"{field}.root")
        self.name = name
        self.every_n_epochs = every_n_epochs
        self.num_points = num_points
        self.use_teacher = use_teacher
        self.svm_c = check_svm_c(svm_c)
        self.svm_folds = svm_folds
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature
        self.batch_size = batch_size
        self.max_per_class = max_per_class
        self._field = field
        self._splits: dict[str, PointCloudSplit] = {}
        self._cache = FeatureCache()  # both splits' features, until the network's weights change
        self.last: ProbeResult | None = None

    def protocol(self) -> str:
        """One line naming the protocol that produced this probe's numbers."""
        if self.svm_c == "auto":
            c = f"C by stratified {self.svm_folds}-fold CV on the train split"
        else:
            c = f"fixed C={self.svm_c:g} (no validation)"
        net = "teacher" if self.use_teacher else "student"
        subset = (f" (at most {self.max_per_class} shapes per class of each split, seeded subset)"
                  if self.max_per_class is not None else "")
        return (
            f"{self.key('*')}: frozen {net}, {self.num_points} points, {self.data.describe()}{subset}; linear SVM "
            f"on standardised features, {c}, test split predicted once; weighted kNN k={self.knn_k}"
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(name=self.name)

    def key(self, metric: str) -> str:
        """The logged name of ``metric`` (``probe/svm_acc`` or ``probe/<name>/svm_acc``)."""
        return f"probe/{self.name}/{metric}" if self.name else f"probe/{metric}"

    # ------------------------------------------------------------------ data
    def _split(self, name: str) -> PointCloudSplit:
        if name not in self._splits:
            split = self.data.load(name)
            if not split.class_names:
                raise DataError(
                    f"{self._field}: {split.source} has no class folders, so no labels to probe with; keep it for "
                    f"data.root (pretraining) and give {self._field}.root a labelled set (one folder per class)"
                )
            if hasattr(split.points, "set_epoch"):
                raise ValueError(
                    f"{self._field}.data: {split.source} draws its {name} split afresh every epoch; a probe "
                    "needs a fixed split (set fresh_train_each_epoch: false for the probe)"
                )
            split.require_points(self.num_points, f"{self._field}.num_points")
            if self.max_per_class is not None:
                kept = per_class_subset(split.labels, self.max_per_class, field=f"{self._field}.max_per_class")
                split = PointCloudSplit(split.points[kept], split.labels[kept], split.class_names, split.source)
            self._splits[name] = split
        return self._splits[name]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Prepare (generate or pack, on rank 0) and load the probe data up front."""
        if trainer.fast_dev_run and (self.max_per_class is None or self.max_per_class > FAST_DEV_RUN_PER_CLASS):
            self.max_per_class = FAST_DEV_RUN_PER_CLASS  # a smoke run checks the probe's path, not its figure
            self._splits.clear()
        if trainer.local_rank == 0:  # one packer per node (caches are usually node-local)
            self.data.prepare(progress=trainer.is_global_zero)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):  # dashboards show the best accuracy so far
                    for metric in ("svm_acc", "svm_macc", "knn_acc", "knn_macc"):
                        logger.experiment.define_metric(self.key(metric), summary="max")
                    logger.experiment.define_metric(self.key("svm_c"), summary="last")
        trainer.strategy.barrier("probe-data")
        self._split("train")
        if stage != "validate":  # validate never reads the test split (:meth:`cross_validate`)
            self._split("test")

    def _features(
        self, backbone: PointBackbone, split: PointCloudSplit, device: torch.device, name: str = "probe"
    ) -> np.ndarray:
        print_rank_zero(f"{self.key('*')}: embedding the {len(split)} {name} clouds ({self.num_points} points)")
        mine = np.arange(rank(), len(split), world_size())
        feats = extract_features(backbone, split.points[mine, : self.num_points], self.batch_size, device)
        feats, _ = _gather_rows(feats, mine)
        return feats

    # ------------------------------------------------------------------ the probe
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ProbeResult:
        """Embed both splits (again only if the network changed), fit on rank 0, return the
        accuracies on every rank.

        Rank 0 also warns when the probe is at chance (:meth:`_warn_if_at_chance`).
        """
        net = pl_module.teacher if self.use_teacher else pl_module.student
        train, test = self._split("train"), self._split("test")
        started = time.perf_counter()
        train_x, test_x = (
            self._cache.get(net.backbone, trainer.global_step, name,
                            lambda s=split, n=name: self._features(net.backbone, s, pl_module.device, n))
            for name, split in (("train", train), ("test", test))
        )
        result: list[ProbeResult | None] = [None]
        if trainer.is_global_zero:
            how = (f"C by {self.svm_folds}-fold CV over at most {len(SVM_C_GRID)} values" if self.svm_c == "auto"
                   else f"C={self.svm_c:g}")
            print(f"{self.key('*')}: features ready in {time.perf_counter() - started:.1f} s; fitting the linear "
                  f"SVM ({how}) on {len(train)} shapes and the kNN", flush=True)
            result = [self._classify(train_x, train.labels, test_x, test.labels, trainer.global_step)]
        if is_distributed():
            torch_dist.broadcast_object_list(result, src=0)
        assert result[0] is not None
        self.last = result[0]
        self._warn_if_at_chance(pl_module, self.last)
        return self.last

    def _classify(
        self, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, step: int
    ) -> ProbeResult:
        """Both classifiers on rank 0's features (fitted on train, scored on test)."""
        svm = linear_svm(train_x, train_y, test_x, test_y, self.svm_c, self.svm_folds)
        knn = weighted_knn(train_x, train_y, test_x, test_y, self.knn_k, self.knn_temperature)
        return ProbeResult(svm.acc, svm.macc, svm.c, knn.acc, knn.macc, step)

    def _warn_if_at_chance(self, pl_module: pl.LightningModule, result: ProbeResult) -> None:
        """Flag a collapse: the SVM's mean per-class accuracy is at chance (rank 0 warns).

        The mean per-class accuracy, not the accuracy: a probe predicting one class scores
        exactly chance on it, while its accuracy on an unbalanced split can look better.
        The monitor's entropy verdict is added when it has one; alone it is no proof (a
        young teacher is near-uniform on purpose), hence the probe decides.
        """
        chance = 100.0 / len(np.unique(self._split("test").labels))
        if result.svm_macc > 1.5 * chance:
            return
        message = (
            f"{self.key('svm_macc')} {result.svm_macc:.1f}% (mean per-class) is at chance level "
            f"({chance:.1f}%) at step {result.step}"
        )
        monitor = getattr(pl_module, "collapse", None)
        verdict = monitor.verdict() if monitor is not None else None
        rank_zero_warn(f"{message}: {verdict}" if verdict is not None else message)

    def _log(self, pl_module: pl.LightningModule, result: ProbeResult) -> None:
        for metric, value in result.metrics().items():
            pl_module.log(self.key(metric), value, sync_dist=True)

    # ------------------------------------------------------------------ hooks
    def state_dict(self) -> dict[str, Any]:
        """The last result and its protocol line, saved into each checkpoint for ``pointdwc export``'s
        model card (under ``checkpoint["callbacks"][state_key]``); empty before the first probe."""
        if self.last is None:
            return {}
        return {"protocol": self.protocol(), "step": self.last.step, "num_points": self.num_points,
                "metrics": self.last.metrics()}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        # max_epochs -1 (a fit bounded by max_steps): no epoch is known to be the last; on_fit_end probes
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and epoch >= trainer.max_epochs
        if last or (self.every_n_epochs > 0 and epoch % self.every_n_epochs == 0):
            self._log(pl_module, self.run(trainer, pl_module))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Probe the final network (unless the last epoch already did) and print the result."""
        if trainer.sanity_checking or trainer.global_step == 0:
            return
        if self.last is None or self.last.step != trainer.global_step:
            result = self.run(trainer, pl_module)
            metrics = {self.key(metric): value for metric, value in result.metrics().items()}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, trainer.global_step)
        assert self.last is not None
        print_rank_zero(f"protocol {self.protocol()}")
        for metric, value in self.last.metrics().items():
            print_rank_zero(f"{self.key(metric)} {format_metric(metric, value)}")

    # ------------------------------------------------------------------ validate: the train split only
    def validation_protocol(self) -> str:
        """The protocol line of :meth:`cross_validate` (``pointdwc validate``)."""
        net = "teacher" if self.use_teacher else "student"
        subset = (f" (at most {self.max_per_class} shapes per class, seeded subset)"
                  if self.max_per_class is not None else "")
        if self.svm_c == "auto":
            how = (f"accuracy of the best C by stratified {self.svm_folds}-fold CV on the train split "
                   "(C chosen on the same folds: optimistic)")
        else:
            how = f"fixed C={self.svm_c:g}, accuracy by stratified {self.svm_folds}-fold CV on the train split"
        return (
            f"{self.key('*')}: frozen {net}, {self.num_points} points, {self.data.describe()}, train split "
            f"only{subset}; linear SVM on standardised features, {how}; test split untouched"
        )

    def cross_validate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Cross-validated SVM accuracy on the probe's train split (the test split is never read):
        ``cv_svm_acc`` (%) and ``cv_svm_c`` by metric name, the same on every rank."""
        net = pl_module.teacher if self.use_teacher else pl_module.student
        train = self._split("train")
        feats = self._features(net.backbone, train, pl_module.device, "train")
        result: list[dict[str, float] | None] = [None]
        if trainer.is_global_zero:
            grid = SVM_C_GRID if self.svm_c == "auto" else (float(self.svm_c),)
            c, acc = cross_validate_svm_c(feats, train.labels, self.svm_folds, grid)
            result = [{"cv_svm_c": c, **({"cv_svm_acc": acc} if acc is not None else {})}]
        if is_distributed():
            torch_dist.broadcast_object_list(result, src=0)
        assert result[0] is not None
        return result[0]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """In ``pointdwc validate`` (not in fit's validation loop, which has its own probe):
        :meth:`cross_validate` and its protocol line."""
        if trainer.sanity_checking or trainer.state.fn != "validate":
            return
        for metric, value in self.cross_validate(trainer, pl_module).items():
            pl_module.log(self.key(metric), value, sync_dist=True)
        print_rank_zero(f"protocol {self.validation_protocol()}")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(pl_module, self.run(trainer, pl_module))
        print_rank_zero(f"protocol {self.protocol()}")
