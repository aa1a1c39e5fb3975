"""The method: Distillation with Contrast (Fu et al., arXiv 2202.04241) and its parts.

The LightningModule (:mod:`.dwc`) reads like the algorithm box; beside it, one module per part:
the network (backbone + DINO head + contrastive projection, :mod:`.network`, :mod:`.heads`), the
distillation and contrastive losses (:mod:`.losses`), the momentum teacher (:mod:`.ema`), the
per-step schedules (:mod:`.schedules`), AdamW with DINO's parameter groups (:mod:`.adamw`),
teacher-and-student synced BatchNorm (:mod:`.sync_batchnorm`), collapse signals (:mod:`.collapse`)
and the RNG state kept for exact resume (:mod:`.rng`).

May import: :mod:`backbones`, :mod:`datamodules`, :mod:`lightning_modules.dist`; nothing else of
``lightning_modules`` (every other sub-package builds on this one).
"""
