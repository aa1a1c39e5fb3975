"""Every ``pointdwc`` sub-command, and what a run leaves on disk.

``fit``/``validate``/``test``/``predict`` of pretraining (:mod:`.cli`, the entry point that also
dispatches the others), ``finetune`` and ``partseg`` (LightningCLIs of their own on the shared
:mod:`.protocol_cli`), ``fewshot`` (:mod:`.fewshot`, :mod:`.fewshot_finetune`), ``embed``,
``export``, ``attention`` and ``data``; the run folder each command writes into
(:mod:`.run_folder`) and the W&B run it ends (:mod:`.wandb_runs`).

May import everything else in the project; nothing imports it.
"""
