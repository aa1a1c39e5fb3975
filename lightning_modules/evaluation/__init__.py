"""How features and fine-tuned networks are judged, the same way for every task.

The linear probe callback of pretraining (:mod:`.probe`, with its feature cache), its classifiers
as plain functions on numpy features (:mod:`.linear_svm`, :mod:`.knn`) and their figures
(:mod:`.metrics`: accuracy, mean per-class accuracy, how commands print a figure), the honest
protocol of supervised tasks (:mod:`.protocol`: checkpoints chosen on a validation split, the test
split read once, seeds reported as mean ± std, the field's protocol only when named) and
test-time voting (:mod:`.voting`).

May import: :mod:`lightning_modules.pretrain`, :mod:`datamodules`, :mod:`backbones`,
:mod:`lightning_modules.dist`.
"""
