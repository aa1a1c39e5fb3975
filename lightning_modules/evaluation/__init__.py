"""How features and fine-tuned networks are judged, the same way for every task.

The linear probe callback of pretraining (:mod:`.probe`, with its feature cache), the honest
protocol of supervised tasks (:mod:`.protocol`: checkpoints chosen on a validation split, the test
split read once, seeds reported as mean ± std, the field's protocol only when named) and
test-time voting (:mod:`.voting`).

May import: :mod:`lightning_modules.pretrain`, :mod:`datamodules`, :mod:`backbones`,
:mod:`lightning_modules.dist`.
"""
