"""Distillation with Contrast (Fu et al., arXiv 2202.04241) as a LightningModule.

Per step (``training_step``):

1. the teacher embeds the G global crops (no gradient);
2. the student embeds all G + L crops (the FPS + kNN grouping of the global crops is
   computed once and shared with the teacher: same points, same patches);
3. L = w · L_distill(student, teacher) + λ · L_contrast(student, teacher);
4. the optimizer steps the student (lr / weight-decay schedules, per-parameter clipping,
   last layer frozen for the first steps);
5. the teacher becomes an EMA of the student (``optimizer_step``, real steps only).
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from dataclasses import asdict, dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from backbones.base import PointBackbone
from backbones.pretrained import backbone_config, checkpoint_state_dict, state_dict_mismatch
from backbones.point_vit import PointViT
from lightning_modules.pretrain.adamw import adamw_kernel, param_groups
from lightning_modules.pretrain.collapse import CollapseMonitor
from lightning_modules.dist import gather_objects, is_distributed, rank
from lightning_modules.pretrain.ema import MomentumParams, ema_update, init_teacher, momentum_params, set_teacher_mode
from lightning_modules.pretrain.heads import HeadConfig, HeadOutput
from lightning_modules.pretrain.losses import ContrastConfig, DistillationLoss, DistillConfig, multi_view_info_nce
from lightning_modules.pretrain.network import Network
from lightning_modules.pretrain.rng import capture_rng_state, restore_rng_state
from lightning_modules.pretrain.schedules import CosineSchedule, LinearWarmup
from lightning_modules.pretrain.sync_batchnorm import convert_to_global_batchnorm


@dataclass
class OptimConfig:
    """AdamW with DINO's schedules (DESIGN.md defaults)."""

    lr: float = 5e-4
    """Peak learning rate per 256 samples; scaled by global_batch / 256."""
    min_lr: float = 1e-6
    warmup_epochs: float = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float = 3.0
    """Per-parameter gradient-norm clip (DINO's ``clip_gradients``); 0 disables."""
    freeze_last_layer_steps: int = 0
    """Optimizer steps during which the head's last layer gets no update (DINO freezes it
    for its first epoch; counted in steps so a short run is not frozen for a tenth of it)."""


@dataclass
class TeacherConfig:
    """EMA momentum, cosine from ``momentum`` to ``momentum_end`` over all steps."""

    momentum: float = 0.996
    momentum_end: float = 1.0


@dataclass
class Schedules:
    """Everything that changes per optimizer step; its state goes into checkpoints."""

    lr: CosineSchedule
    weight_decay: CosineSchedule
    momentum: CosineSchedule
    teacher_temp: LinearWarmup
    steps_per_epoch: int

    def state_dict(self) -> dict[str, Any]:
        """Schedule parameters, for the checkpoint."""
        return {
            "lr": self.lr.state_dict(),
            "weight_decay": self.weight_decay.state_dict(),
            "momentum": self.momentum.state_dict(),
            "teacher_temp": self.teacher_temp.state_dict(),
            "steps_per_epoch": self.steps_per_epoch,
        }


def _check_loss_weights(distill: float, contrast: float) -> None:
    """Both weights non-negative and at least one positive, else one clear error."""
    for field, value in (("model.distill.weight", distill), ("model.contrast.weight", contrast)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{field} must be a finite number >= 0, got {value}")
    if distill == 0 and contrast == 0:
        raise ValueError("model.distill.weight and model.contrast.weight are both 0: nothing would be learned")


def _schedule_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name: saved -> current`` for every schedule value that differs (relative 1e-9)."""
    changes = []
    for name, value in current.items():
        old = saved.get(name)
        if isinstance(value, dict):
            changes += [f"{name}.{c}" for c in _schedule_changes(old if isinstance(old, dict) else {}, value)]
        elif old is None or not math.isclose(float(old), float(value), rel_tol=1e-9, abs_tol=0.0):
            changes.append(f"{name}: {old} -> {value}")
    return changes


def _compile_backend(compile: bool | str) -> str:
    """The ``torch.compile`` backend ``model.compile`` names (``true``: inductor), or one clear error."""
    if compile is True:
        return "inductor"
    backends = torch._dynamo.list_backends(exclude_tags=())
    if compile not in backends:
        raise ValueError(f"model.compile: {compile!r} is not a torch.compile backend; use true or one of {backends}")
    return str(compile)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""``torch.compile`` modes of the inductor backend; the two without ``no-cudagraphs`` capture CUDA graphs on CUDA."""


def _compile_mode(mode: str | None, backend: str | None) -> str | None:
    """``model.compile_mode`` checked against the backend it needs (inductor), or one clear error."""
    if mode is None:
        return None
    if mode not in COMPILE_MODES:
        raise ValueError(f"model.compile_mode: {mode!r} is not a torch.compile mode; use one of {COMPILE_MODES}")
    if backend != "inductor":
        raise ValueError(f"model.compile_mode: {mode!r} needs model.compile: true (inductor), got model.compile: {backend}")
    return mode


def clip_gradients_(grads: list[Tensor], clip: float) -> None:
    """DINO's per-parameter clip, in place: each gradient times ``min(1, clip / (‖g‖ + 1e-6))``.

    Multi-tensor kernels over the whole list (one norm kernel, one scale): no loop over the
    parameters, no value read on the host (a factor of 1 leaves a gradient as it is).
    """
    if not grads:
        return
    coefs = torch._foreach_add(torch._foreach_norm(grads), 1e-6)
    torch._foreach_reciprocal_(coefs)
    torch._foreach_mul_(coefs, clip)
    torch._foreach_clamp_max_(coefs, 1.0)
    torch._foreach_mul_(grads, coefs)


@dataclass
class NonFiniteWatch:
    """Device-side record of non-finite losses, read on the host only when checked.

    ``seen``: some loss since the start was non-finite; ``first_step``, ``distill``,
    ``contrast``: the step and the two terms of the first such loss. All 0-d tensors on
    the loss's device, updated without a host read (:meth:`update`).
    """

    seen: Tensor
    first_step: Tensor
    distill: Tensor
    contrast: Tensor

    @classmethod
    def on(cls, device: torch.device) -> NonFiniteWatch:
        """Nothing seen yet, on ``device``."""
        zero = torch.zeros((), device=device)
        return cls(torch.zeros((), dtype=torch.bool, device=device), torch.zeros((), dtype=torch.long, device=device), zero, zero)

    @torch.no_grad()
    def update(self, step: int, loss: Tensor, loss_distill: Tensor, loss_contrast: Tensor) -> None:
        """Fold one step's loss in (device ops only)."""
        bad = ~torch.isfinite(loss.detach())
        first = bad & ~self.seen
        self.first_step = torch.where(first, step, self.first_step)
        self.distill = torch.where(first, loss_distill.detach().float(), self.distill)
        self.contrast = torch.where(first, loss_contrast.detach().float(), self.contrast)
        self.seen = self.seen | bad

    def seen_on_any_rank(self) -> bool:
        """True when a non-finite loss was seen on any rank (one host read; every rank must
        call it at the same step, as all must stop together)."""
        seen = self.seen.float()
        if is_distributed():
            torch.distributed.all_reduce(seen, op=torch.distributed.ReduceOp.MAX)
        return bool(seen.item())


class DistillationWithContrast(pl.LightningModule):
    """Student/teacher self-distillation with a contrastive term.

    Args:
        backbone: any :class:`~backbones.base.PointBackbone` (class path in YAML).
        head: DINO head sizes.
        distill: distillation loss settings.
        contrast: contrastive term settings (weight λ, temperature).
        optim: optimizer and schedules.
        teacher: EMA momentum schedule.
        batch_size: per-device batch size (linked from ``data.batch_size``), for lr scaling.
        max_epochs: length of the schedules (linked from ``trainer.max_epochs``); defaults
            to the trainer's.
        sync_batchnorm: under DDP, normalise every BatchNorm layer of the student and the
            teacher with the statistics of the global batch (all ranks); see
            :mod:`lightning_modules.pretrain.sync_batchnorm`. No effect in one process.
        compile: ``torch.compile`` the backbone + head of the student and of the teacher
            (``true``: inductor; a string names another backend, e.g. ``aot_eager`` to check
            graph capture without generating code), one static-shape graph per crop
            resolution, each a single graph (``fullgraph``: a graph break is an error, not a silent
            eager fallback); see :meth:`~lightning_modules.pretrain.network.Network.compile_forward`.
            Off by default: measured no faster on a 2-core CPU once compiled, and compiling takes
            minutes there; not yet measured on a GPU (README, "Benchmarks").
        compile_mode: inductor's mode with ``compile: true``: ``reduce-overhead`` replays each
            forward as a CUDA graph on CUDA (one launch instead of hundreds of kernels; a step
            boundary is marked at every training step), ``max-autotune`` also tunes kernels;
            no effect on a CPU. Not yet measured on a GPU.
    """

    def __init__(
        self,
        backbone: PointBackbone | None = None,
        head: HeadConfig = HeadConfig(),
        distill: DistillConfig = DistillConfig(),
        contrast: ContrastConfig = ContrastConfig(),
        optim: OptimConfig = OptimConfig(),
        teacher: TeacherConfig = TeacherConfig(),
        batch_size: int = 64,
        max_epochs: int | None = None,
        sync_batchnorm: bool = False,
        compile: bool | str = False,
        compile_mode: str | None = None,
    ) -> None:
        super().__init__()
        backbone = backbone if backbone is not None else PointViT()
        # Plain types only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "backbone": backbone_config(backbone),
                "head": asdict(head),
                "distill": asdict(distill),
                "contrast": asdict(contrast),
                "optim": asdict(optim),
                "teacher": asdict(teacher),
                "batch_size": batch_size,
                "max_epochs": max_epochs,
                "sync_batchnorm": sync_batchnorm,
                "compile": compile,
                "compile_mode": compile_mode,
            }
        )
        _check_loss_weights(distill.weight, contrast.weight)
        if contrast.student_views not in ("all", "global"):
            raise ValueError(f"model.contrast.student_views must be 'all' or 'global', got {contrast.student_views!r}")
        self.head_config = copy.deepcopy(head)
        self.distill_config = copy.deepcopy(distill)
        self.contrast_config = copy.deepcopy(contrast)
        self.optim_config = copy.deepcopy(optim)
        self.teacher_config = copy.deepcopy(teacher)
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.student = Network(backbone, self.head_config)
        if sync_batchnorm:
            convert_to_global_batchnorm(self.student)  # the teacher below is a copy: converted too
        self.teacher = copy.deepcopy(self.student)
        backend = _compile_backend(compile) if compile else None
        mode = _compile_mode(compile_mode, backend)
        self._cuda_graphs = mode in ("reduce-overhead", "max-autotune")
        if backend is not None:
            self.student.compile_forward(backend, mode)
            self.teacher.compile_forward(backend, mode)
        self.momentum_pairs = [(self.student.backbone, self.teacher.backbone), (self.student.head, self.teacher.head)]
        init_teacher(self.momentum_pairs)
        self._momentum_params: MomentumParams = momentum_params(self.momentum_pairs)
        self._student_params: list[torch.nn.Parameter] = list(self.student.parameters())
        self._last_layer_params: list[torch.nn.Parameter] = list(self.student.head.last_layer.parameters())
        set_teacher_mode(self.teacher, training=False)
        self.distill_loss = DistillationLoss(
            self.head_config.out_dim, self.distill_config.student_temp, self.distill_config.center_momentum
        )
        self.schedules: Schedules | None = None
        self._saved_schedules: dict[str, Any] | None = None
        self.collapse = CollapseMonitor(self.head_config.out_dim)
        self._non_finite: NonFiniteWatch | None = None

    def train(self, mode: bool = True) -> DistillationWithContrast:
        """Switch the student's mode; the teacher stays in eval mode (no drop path) except
        for its BatchNorm layers, which use batch statistics while training (DINO's teacher)."""
        super().train(mode)
        set_teacher_mode(self.teacher, training=mode)
        return self

    def on_train_start(self) -> None:
        """Lightning keeps each module's mode rather than calling ``train()``: set the teacher's.
        Here as well as at each epoch start, because a run resumed in the middle of an epoch
        skips ``on_train_epoch_start`` for that epoch. A new fit watches for non-finite losses afresh."""
        set_teacher_mode(self.teacher, training=True)
        self._non_finite = None

    def on_train_epoch_start(self) -> None:
        """Again at every epoch: end-of-epoch probes and pictures put the teacher in eval mode."""
        set_teacher_mode(self.teacher, training=True)

    # ------------------------------------------------------------------ the algorithm
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """One step of Distillation with Contrast on a batch of multi-crop views."""
        global_views, local_views = batch["global"], batch["local"]
        if self._cuda_graphs and global_views.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()  # last step's graph outputs may be overwritten now
        step = self.global_step
        teacher_temp = self.schedules.teacher_temp(step) if self.schedules else self.distill_config.teacher_temp
        patches = self.student.group(global_views)  # one FPS + kNN of the global crops for both networks
        with torch.no_grad():
            teacher_out = self.teacher(global_views, patches)
        student_out = self._student_views(global_views, local_views, patches)
        loss_distill = self.distill_loss(student_out.logits, teacher_out.logits, teacher_temp)
        loss_contrast = self.contrastive_loss(student_out.embedding, teacher_out.embedding)
        loss = self.total_loss(loss_distill, loss_contrast)
        if self._non_finite is None:
            self._non_finite = NonFiniteWatch.on(loss.device)
        self._non_finite.update(step, loss, loss_distill, loss_contrast)
        if self._non_finite_check_due(step, batch_idx) and self._non_finite.seen_on_any_rank():
            self._stop_on_non_finite(step)
        self._log_step(loss, loss_distill, loss_contrast, teacher_out, teacher_temp, step)
        self.distill_loss.update_center(teacher_out.logits)
        return loss

    def _non_finite_check_due(self, step: int, batch_idx: int) -> bool:
        """Whether this step reads the non-finite flag on the host: at Lightning's logging
        interval (``trainer.log_every_n_steps``), the last batch of an epoch and the last step
        of the run; every step without a trainer. Decided from host counters only, the same
        on every rank."""
        trainer = self._trainer
        if trainer is None:
            return True
        every = max(1, int(trainer.log_every_n_steps or 1))
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        last_step = trainer.max_steps is not None and trainer.max_steps > 0 and step + 1 >= trainer.max_steps
        return (step + 1) % every == 0 or last_batch or last_step

    def contrastive_loss(self, student_emb: Tensor, teacher_emb: Tensor) -> Tensor:
        """InfoNCE of each student view (or each global one) against each *other* teacher global view."""
        if self.contrast_config.student_views == "global":
            student_emb = student_emb[: teacher_emb.shape[0]]
        return multi_view_info_nce(student_emb, teacher_emb, self.contrast_config.temperature)

    def total_loss(self, loss_distill: Tensor, loss_contrast: Tensor) -> Tensor:
        """w · L_distill + λ · L_contrast (a term of weight 0 still runs, for its log)."""
        return self.distill_config.weight * loss_distill + self.contrast_config.weight * loss_contrast

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Set this step's lr / weight decay, step the student, then update the teacher."""
        step = self.global_step
        if self.schedules is not None:
            for group in optimizer.param_groups:
                group["lr"] = self.schedules.lr(step)
                if group["decay"]:
                    group["weight_decay"] = self.schedules.weight_decay(step)
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        momentum = self.schedules.momentum(step) if self.schedules else self.teacher_config.momentum
        ema_update(self._momentum_params, momentum)

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        """DINO's per-parameter gradient clipping and last-layer freezing, over lists built once.

        Frozen means no gradient at all (``grad = None``, DINO's ``cancel_gradients_last_layer``):
        AdamW then skips the parameter (no weight decay, no moment update). A zeroed gradient
        would not be the same: weight decay and the moments would still move it.
        """
        clip = self.optim_config.clip_grad
        if clip > 0:
            clip_gradients_([p.grad for p in self._student_params if p.grad is not None], clip)
        if self.global_step < self.optim_config.freeze_last_layer_steps:
            for p in self._last_layer_params:  # the head's last layer: one weight
                p.grad = None

    # ------------------------------------------------------------------ evaluation
    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Pretext losses on the test split (the probe callback adds its accuracies)."""
        self._eval_step(batch, "test")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Pretext losses on the shapes held out of training (``data.val_fraction``), logged as
        ``val/loss``, ``val/loss_distill``, ``val/loss_contrast`` (epoch means).

        The losses of :meth:`training_step` on the same kind of views, with nothing updated
        (no parameters, no EMA, no centre) and the final teacher temperature (not the warm-up's),
        so figures of any step, in ``fit`` or ``pointdwc validate``, compare."""
        self._eval_step(batch, "val")

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> None:
        patches = self.student.group(batch["global"])
        teacher_out = self.teacher(batch["global"], patches)
        student_out = self._student_views(batch["global"], batch["local"], patches)
        loss_distill = self.distill_loss(student_out.logits, teacher_out.logits, self.distill_config.teacher_temp)
        loss_contrast = self.contrastive_loss(student_out.embedding, teacher_out.embedding)
        loss = self.total_loss(loss_distill, loss_contrast)
        kw = {"on_epoch": True, "sync_dist": True, "batch_size": batch["global"].shape[1]}
        self.log(f"{stage}/loss", loss, **kw)
        self.log(f"{stage}/loss_distill", loss_distill, **kw)
        self.log(f"{stage}/loss_contrast", loss_contrast, **kw)

    # ------------------------------------------------------------------ optimisation
    def build_optimizer(self) -> torch.optim.Optimizer:
        """The student's AdamW: two groups (no weight decay on biases and norm weights), the
        kernel for the module's device (fused on CUDA and CPU); lr and weight decay are set
        each step from the schedules."""
        cfg = self.optim_config
        return torch.optim.AdamW(
            param_groups(self.student.named_parameters(), cfg.weight_decay),
            lr=cfg.lr,
            betas=cfg.betas,
            **adamw_kernel(self.device),
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """:meth:`build_optimizer` + schedules (runs once the module is on its device)."""
        optimizer = self.build_optimizer()
        self.schedules = self._build_schedules()
        self._warn_if_schedules_changed()
        return optimizer

    def _build_schedules(self) -> Schedules:
        """Per-step schedules from the loader's length (not from the epoch count alone).

        ``steps_per_epoch`` is the number of optimizer steps one pass over the training
        loader takes; the total is ``model.max_epochs`` of them (capped by
        ``trainer.max_steps``) or, without an epoch count, Lightning's estimate, which
        honours ``max_steps``. Warm-ups given in epochs become ``round(epochs ·
        steps_per_epoch)`` steps, capped at the run's length.
        """
        trainer = self.trainer
        estimated = trainer.estimated_stepping_batches
        if trainer.train_dataloader is None:  # max_epochs -1: Lightning did not build it
            trainer.fit_loop.setup_data()
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            raise ValueError("the training loader has no length: pointdwc's schedules need a sized data set")
        steps_per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
        epochs = self.max_epochs
        if epochs is not None and epochs > 0:
            total = epochs * steps_per_epoch
            if trainer.max_steps is not None and trainer.max_steps > 0:
                total = min(total, trainer.max_steps)
        elif math.isfinite(estimated):
            total = int(estimated)
        else:
            raise ValueError(
                "trainer.max_epochs is -1 and trainer.max_steps is unset: the lr, momentum and "
                "teacher-temperature schedules need the run's length; set one of them"
            )
        total = max(1, total)
        world = trainer.world_size * trainer.accumulate_grad_batches
        cfg, dcfg, tcfg = self.optim_config, self.distill_config, self.teacher_config
        peak = cfg.lr * self.batch_size * world / 256.0

        def steps(epochs_: float) -> int:
            return min(total, round(epochs_ * steps_per_epoch))

        return Schedules(
            lr=CosineSchedule(peak, cfg.min_lr, total, steps(cfg.warmup_epochs)),
            weight_decay=CosineSchedule(cfg.weight_decay, cfg.weight_decay_end, total),
            momentum=CosineSchedule(tcfg.momentum, tcfg.momentum_end, total),
            teacher_temp=LinearWarmup(dcfg.warmup_teacher_temp, dcfg.teacher_temp, steps(dcfg.warmup_teacher_temp_epochs)),
            steps_per_epoch=steps_per_epoch,
        )

    def _warn_if_schedules_changed(self) -> None:
        """On resume, name every schedule value that differs from the checkpoint's.

        A resumed run rebuilds its schedules from the current batch size, device count and
        run length; if any of those changed, lr / weight decay / momentum / teacher
        temperature silently follow another curve from the resumed step on.
        """
        if self._saved_schedules is None or self.schedules is None:
            return  # called again once both exist
        saved, self._saved_schedules = self._saved_schedules, None
        changes = _schedule_changes(saved, self.schedules.state_dict())
        if changes:
            warnings.warn(
                "resuming with schedules that differ from the checkpoint's ("
                + "; ".join(changes)
                + "): the global batch size (data.batch_size x devices x nodes x accumulation), "
                "trainer.max_epochs / max_steps or a model.optim / distill / teacher value changed. "
                "Resume with the original settings to continue the same run.",
                stacklevel=2,
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the schedules a run used and every rank's RNG state."""
        if self.schedules is not None:
            checkpoint["pointdwc_schedules"] = self.schedules.state_dict()
        checkpoint["pointdwc_rng"] = gather_objects(capture_rng_state())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another architecture with one readable message."""
        state = checkpoint_state_dict(checkpoint, "pointdwc Lightning checkpoint")
        own = self.state_dict()
        differ = state_dict_mismatch(own, state)
        if differ:
            missing, unexpected = differ.missing, differ.unexpected
            shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in differ.reshaped]
            problems = shapes[:3] + [f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in unexpected[:3]]
            raise ValueError(
                "the checkpoint does not match the configured model "
                f"({len(shapes)} shape mismatches, {len(missing)} missing, {len(unexpected)} unexpected tensors; "
                f"e.g. {'; '.join(problems)}). Use the config the checkpoint was trained with "
                "(its config.yaml sits next to the run's logs)."
            )
        self._saved_schedules = checkpoint.get("pointdwc_schedules")
        self._warn_if_schedules_changed()  # no-op until configure_optimizers has built the new ones
        states = checkpoint.get("pointdwc_rng")
        if states:
            restore_rng_state(states[rank()] if rank() < len(states) else states[0])

    def _stop_on_non_finite(self, step: int) -> None:
        """Save the state before this step's update and stop with a clear message.

        The flag is read every ``trainer.log_every_n_steps`` steps, not every step (no host
        sync per step): when the first non-finite loss came before this step, the steps since
        have already updated the model with it, and the message says so.
        """
        watch = self._non_finite
        first = int(watch.first_step.item()) if watch is not None else step
        ckpt_cb = self.trainer.checkpoint_callback
        directory = Path(getattr(ckpt_cb, "dirpath", None) or self.trainer.default_root_dir)
        terms = f"distill={watch.distill.item():.4g}, contrast={watch.contrast.item():.4g}" if watch is not None else ""
        if first == step:
            path = directory / f"last-finite-step{step}.ckpt"
            saved = f"the last good state is saved to {path}"
        else:
            path = directory / f"non-finite-since-step{first}-at-step{step}.ckpt"
            saved = (
                f"found at the check of step {step} (the flag is read every trainer.log_every_n_steps = "
                f"{self.trainer.log_every_n_steps} steps and at epoch ends); steps {first} to {step - 1} "
                f"already updated the model, so the state saved to {path} is not a good one: resume from "
                "an earlier checkpoint, and set trainer.log_every_n_steps: 1 to stop before the first bad update"
            )
        self.trainer.save_checkpoint(path)
        raise FloatingPointError(
            f"non-finite loss at step {first} ({terms}); {saved}. "
            "Lower model.optim.lr or raise model.optim.warmup_epochs, then resume with --ckpt_path."
        )

    # ------------------------------------------------------------------ helpers
    def _student_views(
        self, global_views: Tensor, local_views: Tensor, patches: Any | None = None, local_patches: Any | None = None
    ) -> HeadOutput:
        """Student outputs of the global then local views, batched per crop size (``patches``:
        the global views' grouping, shared with the teacher; ``local_patches``: the local ones')."""
        outs = [self.student(global_views, patches)]
        if local_views.shape[0] > 0:
            outs.append(self.student(local_views, local_patches))
        return HeadOutput(
            torch.cat([o.logits for o in outs]), torch.cat([o.embedding for o in outs])
        )

    @torch.no_grad()
    def _log_step(
        self, loss: Tensor, ld: Tensor, lc: Tensor, teacher_out: HeadOutput, temp: float, step: int
    ) -> None:
        probs = self.distill_loss.teacher_probs(teacher_out.logits.flatten(0, 1), temp)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
        mean_p = probs.mean(0)
        batch_entropy = -(mean_p * mean_p.clamp_min(1e-12).log()).sum()
        b = teacher_out.logits.shape[1]
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        self.log("train/loss_distill", ld, batch_size=b)
        self.log("train/loss_contrast", lc, batch_size=b)
        self.log("train/teacher_entropy", entropy, batch_size=b)
        self.log("train/teacher_batch_entropy", batch_entropy, batch_size=b)
        # each teacher view is paired with the same number of student views, so the mean
        # cross-entropy minus the mean teacher entropy is the mean KL(teacher || student)
        self.log("train/kl_student_teacher", ld - entropy, batch_size=b)
        self.collapse.update(entropy.detach(), batch_entropy.detach())
        self.log("train/teacher_temp", temp, batch_size=b)
        if self.schedules is not None:
            self.log("train/lr", self.schedules.lr(step), batch_size=b)
            self.log("train/weight_decay", self.schedules.weight_decay(step), batch_size=b)
            self.log("train/momentum", self.schedules.momentum(step), batch_size=b)
