"""Pictures for people: the W&B dashboard's crops, attention maps and part colours.

A numpy-only point renderer (:mod:`.render`) and the callbacks that use it: :mod:`.visuals`
(pretraining crops and the teacher's attention) and :mod:`.part_pictures` (true and predicted
parts). A callback does nothing when no W&B logger is attached.

May import: :mod:`lightning_modules.downstream`, :mod:`lightning_modules.evaluation`,
:mod:`lightning_modules.pretrain`, :mod:`backbones`.
"""
