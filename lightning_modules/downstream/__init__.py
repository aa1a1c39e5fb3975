"""Supervised tasks on a pretrained (or randomly initialised) backbone.

Classification fine-tuning (:mod:`.finetune`, :mod:`.classifier_head`), few-shot classification on
frozen features (:mod:`.fewshot_frozen`), part segmentation (:mod:`.partseg`, the network in
:mod:`.part_segmenter`, the field's mIoU in :mod:`.part_iou`); what the supervised tasks share —
optimiser and checkpoint entries — in :mod:`.supervised`. Where a backbone's weights come from
(``--ckpt``) is :mod:`lightning_modules.checkpoint_encoder`'s.

May import: :mod:`lightning_modules.evaluation`, :mod:`lightning_modules.pretrain`, the modules at
the top of ``lightning_modules``, :mod:`datamodules`, :mod:`backbones`.
"""
