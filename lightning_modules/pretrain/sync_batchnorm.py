"""BatchNorm over the global batch under DDP, for the student *and* the teacher (``model.sync_batchnorm``).

Without it, each DDP rank normalises with the statistics of its own share of the batch:
the student's global and local crops, and the teacher's global crops, per rank. Then a DDP
run is not the same computation as one process on the global batch, and the contrastive
term's negatives gathered from other ranks carry their rank's statistics while a view's
positive shares its own (the information leak that SimCLR's global BatchNorm and MoCo's
shuffled BatchNorm remove). DINO converts both networks to SyncBatchNorm.

``torch.nn.SyncBatchNorm`` refuses CPU tensors, so the gloo (CPU) DDP this project is
tested with cannot use it; :class:`GlobalBatchNorm` is plain torch on top of the project's
autograd-aware gather and runs on any device and backend. Outside DDP, and in eval mode, it
is exactly ``BatchNorm`` (the same call), so a converted model gives bit-identical results
in one process and its checkpoints have the same keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_modules.dist import gather_with_grad, is_distributed


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the batch summed over all DDP ranks.

    Each rank sends its per-channel mean, sum of squared deviations and count (one small
    all-gather per call, with gradients); every rank combines them in rank order (Chan's
    parallel variance), so all ranks normalise identically and update identical running
    statistics. Input ``(B, C, ...)`` of any rank ≥ 2, like :class:`torch.nn.SyncBatchNorm`.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects at least 2-D input (B, C, ...), got {input.dim()}-D")

    def forward(self, input: Tensor) -> Tensor:
        """Global-batch statistics while training under DDP; otherwise ``BatchNorm``'s own forward."""
        if not (self.training and is_distributed()):
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        x = input.float()  # statistics in float32, also under mixed precision
        count = input.numel() // channels
        mean = x.mean(dims)
        m2 = (x - mean.view(shape)).square().sum(dims)
        stats = torch.cat([mean, m2, mean.new_full((1,), float(count))]).unsqueeze(0)
        means, m2s, counts = gather_with_grad(stats).split([channels, channels, 1], dim=1)
        total = counts.sum()
        global_mean = (counts * means).sum(0) / total
        global_m2 = (m2s + counts * (means - global_mean).square()).sum(0)
        var = global_m2 / total
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(global_mean.detach(), (global_m2 / (total - 1).clamp_min(1)).detach())
        y = (x - global_mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        """BatchNorm's update: momentum, or the cumulative average when ``momentum`` is None."""
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), factor)


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer in ``module`` by a :class:`GlobalBatchNorm` in place.

    The new layers take over the old ones' parameters (the same tensors), buffers and mode,
    so optimisers, EMA pairs and checkpoints are unaffected. Returns ``module`` (or its
    replacement, when ``module`` itself is a BatchNorm layer).
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new_child = convert_to_global_batchnorm(child)
        if new_child is not child:
            module.add_module(name, new_child)
    return module
