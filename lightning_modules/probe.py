"""Linear-probe evaluation of frozen features: a linear SVM and a kNN classifier.

The probe data set is independent of the pretraining data (the paper pretrains on
ShapeNet55 and probes ModelNet40 and ScanObjectNN): any :class:`PointCloudSet` by class
path (``probe.data``), a folder whose layout is detected (``probe.root``), or the
embedded synthetic set. Several probes can run side by side (extra ``LinearProbe``
callbacks with a ``name``). Each rank embeds its own share of the clouds (no padding,
so no sample counts twice); rank 0 fits the classifiers and shares the accuracies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from backbones.base import PointBackbone
from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.detect import resolve_dataset
from lightning_modules.dist import gather_objects, is_distributed, print_rank_zero, rank, world_size


@dataclass
class ProbeResult:
    """Accuracies in percent on the probe's test split."""

    svm_acc: float
    knn_acc: float
    step: int
    """Optimizer step of the network that was probed."""


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


def svm_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, c: float) -> float:
    """Accuracy (%) of a linear SVM fitted on standardised train features."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    clf = make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=5000, random_state=0))
    clf.fit(train_x, train_y)
    return float((clf.predict(test_x) == test_y).mean() * 100.0)


def knn_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int, temperature: float
) -> float:
    """Accuracy (%) of DINO's weighted kNN on cosine similarity."""
    train = F.normalize(torch.from_numpy(train_x).float(), dim=1)
    test = F.normalize(torch.from_numpy(test_x).float(), dim=1)
    labels = torch.from_numpy(train_y).long()
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    k = min(k, len(train))
    sims, idx = (test @ train.T).topk(k, dim=1)
    weights = (sims / temperature).exp()
    votes = torch.zeros(len(test), num_classes).scatter_add_(1, labels[idx], weights)
    return float((votes.argmax(1).numpy() == test_y).mean() * 100.0)


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

    Runs every ``every_n_epochs`` epochs and at the end of ``fit``, and in ``test``.
    Logs ``probe/svm_acc`` and ``probe/knn_acc`` (percent), or ``probe/<name>/...``.

    Args:
        data: the probe data set by class path (e.g. ``datamodules.ModelNet40H5``).
        root: shortcut: a data folder whose layout is detected (instead of ``data``).
            Neither given: the embedded synthetic set.
        name: distinguishes the metrics of several probes (``probe/<name>/svm_acc``).
        every_n_epochs: probe during ``fit`` every this many epochs (0: only at the end).
        num_points: points per cloud fed to the backbone (the first ones stored).
        use_teacher: probe the teacher (True, the paper's choice) or the student.
        svm_c: regularisation C of the linear SVM.
        knn_k: neighbours of the kNN classifier.
        knn_temperature: temperature of the kNN vote weights.
        batch_size: clouds per forward pass while embedding.
    """

    def __init__(
        self,
        data: PointCloudSet | None = None,
        root: str | None = None,
        name: str | None = None,
        every_n_epochs: int = 5,
        num_points: int = 1024,
        use_teacher: bool = True,
        svm_c: float = 0.05,
        knn_k: int = 20,
        knn_temperature: float = 0.07,
        batch_size: int = 128,
    ) -> None:
        super().__init__()
        field = f"probe[{name}]" if name else "probe"
        self.data = resolve_dataset(data, root, f"{field}.data", f"{field}.root")
        self.name = name
        self.every_n_epochs = every_n_epochs
        self.num_points = num_points
        self.use_teacher = use_teacher
        self.svm_c = svm_c
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature
        self.batch_size = batch_size
        self._field = field
        self._splits: dict[str, PointCloudSplit] = {}
        self.last: ProbeResult | None = None

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
            split.require_points(self.num_points, f"{self._field}.num_points")
            self._splits[name] = split
        return self._splits[name]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Prepare (generate or pack, on rank 0) and load the probe data up front."""
        if trainer.local_rank == 0:  # one packer per node (caches are usually node-local)
            self.data.prepare(progress=trainer.is_global_zero)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):  # dashboards show the best accuracy so far
                    for key in (self.key("svm_acc"), self.key("knn_acc")):
                        logger.experiment.define_metric(key, summary="max")
        trainer.strategy.barrier("probe-data")
        self._split("train")
        self._split("test")

    def _features(self, backbone: PointBackbone, split: PointCloudSplit, device: torch.device) -> np.ndarray:
        mine = np.arange(rank(), len(split), world_size())
        feats = extract_features(backbone, split.points[mine, : self.num_points], self.batch_size, device)
        feats, _ = _gather_rows(feats, mine)
        return feats

    # ------------------------------------------------------------------ the probe
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ProbeResult:
        """Embed both splits, fit on rank 0, return the accuracies on every rank."""
        net = pl_module.teacher if self.use_teacher else pl_module.student
        train, test = self._split("train"), self._split("test")
        train_x = self._features(net.backbone, train, pl_module.device)
        test_x = self._features(net.backbone, test, pl_module.device)
        result = [None]
        if trainer.is_global_zero:
            svm = svm_accuracy(train_x, train.labels, test_x, test.labels, self.svm_c)
            knn = knn_accuracy(train_x, train.labels, test_x, test.labels, self.knn_k, self.knn_temperature)
            result = [ProbeResult(svm, knn, trainer.global_step)]
        if is_distributed():
            torch_dist.broadcast_object_list(result, src=0)
        self.last = result[0]
        return self.last

    def _warn_if_at_chance(self, pl_module: pl.LightningModule, result: ProbeResult) -> None:
        """Flag a collapse: probe at chance while the teacher's entropy sits at an extreme.

        Entropy alone is no verdict (a young teacher is near-uniform on purpose), so the
        flag needs the probe to have fallen to chance as well.
        """
        chance = 100.0 / len(self._split("train").class_names)
        if result.svm_acc > 1.5 * chance:
            return
        monitor = getattr(pl_module, "collapse", None)
        verdict = monitor.verdict() if monitor is not None else None
        if verdict is not None:
            rank_zero_warn(f"probe accuracy {result.svm_acc:.1f}% is at chance level ({chance:.1f}%): {verdict}")
        else:
            rank_zero_warn(f"probe accuracy {result.svm_acc:.1f}% is at chance level ({chance:.1f}%)")

    def _log(self, pl_module: pl.LightningModule, result: ProbeResult) -> None:
        pl_module.log(self.key("svm_acc"), result.svm_acc, sync_dist=True)
        pl_module.log(self.key("knn_acc"), result.knn_acc, sync_dist=True)

    # ------------------------------------------------------------------ hooks
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if last or (self.every_n_epochs > 0 and epoch % self.every_n_epochs == 0):
            self._log(pl_module, self.run(trainer, pl_module))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Probe the final network (unless the last epoch already did) and print the result."""
        if trainer.sanity_checking or trainer.global_step == 0:
            return
        if self.last is None or self.last.step != trainer.global_step:
            result = self.run(trainer, pl_module)
            for logger in trainer.loggers:
                logger.log_metrics({self.key("svm_acc"): result.svm_acc, self.key("knn_acc"): result.knn_acc}, trainer.global_step)
        assert self.last is not None
        print_rank_zero(f"{self.key('svm_acc')} {self.last.svm_acc:.2f}")
        print_rank_zero(f"{self.key('knn_acc')} {self.last.knn_acc:.2f}")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(pl_module, self.run(trainer, pl_module))
