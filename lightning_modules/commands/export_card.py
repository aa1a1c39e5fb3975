"""What an exported encoder says about itself: ``config.json``'s fields and the ``README.md`` model card.

Both are written from the checkpoint alone (:class:`~lightning_modules.checkpoint_encoder.CheckpointEncoder`):
the backbone, the data and recipe of the training config stored in the checkpoint, the probe
figures it holds with their protocol lines, and how to feed the encoder (points per cloud,
normalisation). A field the checkpoint does not record is said to be unknown, never guessed.
"""

from __future__ import annotations

from typing import Any

import yaml

from lightning_modules.checkpoint_encoder import CheckpointEncoder

NORMALISATION = "each cloud centred on its centroid and scaled so its farthest point lies at radius 1"
"""How the training and probe data sets normalise clouds (``datamodules.dataset.normalize_unit_sphere``)."""

RECIPE_SECTIONS = ("head", "distill", "contrast", "optim", "teacher")
"""The ``model`` sections of a config that make the pretraining recipe."""

GROUPING = {
    "PointViT": "farthest point sampling (unrolled over the patches) and the kNN patches (TopK) are inside "
                "the graph: the patch count is fixed by the points per cloud",
    "DGCNN": "the dynamic kNN graph of every EdgeConv layer (TopK) is inside the graph",
    "PointNet": "no grouping: every point goes through the shared MLP",
}
"""What of each shipped backbone's grouping an ONNX / torch.export graph holds."""


def training_config(encoder: CheckpointEncoder) -> dict[str, Any]:
    """The training config stored in the checkpoint, parsed (empty when it is not a mapping)."""
    try:
        config = yaml.safe_load(encoder.config)
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def _flow(value: Any) -> str:
    """``value`` as one line of YAML flow style."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()


def input_points(encoder: CheckpointEncoder) -> int:
    """Points per cloud the checkpoint was judged on: its stored probe result's, else the training config's
    probe or data section's, else 1024."""
    for probe in encoder.probes:
        if isinstance(probe.get("num_points"), int) and probe["num_points"] > 0:
            return probe["num_points"]
    config = training_config(encoder)
    for section in ("probe", "data"):
        value = (config.get(section) or {}).get("num_points") if isinstance(config.get(section), dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return 1024


def export_config(encoder: CheckpointEncoder, num_points: int, version: str) -> dict[str, Any]:
    """The fields of ``config.json`` (and of a graph's metadata) besides ``format`` and ``version``."""
    return {
        "class_path": encoder.class_path,
        "init_args": encoder.init_args,
        "out_dim": int(getattr(encoder.backbone, "out_dim", -1)),
        "num_points": num_points,
        "normalisation": NORMALISATION,
        "input": "points (batch, num_points, 3) float32 -> global_feature (batch, out_dim)",
        "network": encoder.network,
        "checkpoint": encoder.checkpoint.name,
        "checkpoint_sha256": encoder.sha256,
        "global_step": encoder.global_step,
        "probes": encoder.probes,
        "pointdwc_version": version,
    }


def _data_line(config: dict[str, Any]) -> str:
    data = config.get("data")
    if not isinstance(data, dict):
        return "not recorded in the checkpoint"
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and dataset.get("class_path"):
        args = dataset.get("init_args") or {}
        where = f" at `{args['root']}`" if isinstance(args, dict) and args.get("root") else ""
        name = f"`{dataset['class_path']}`{where}"
    elif data.get("root"):
        name = f"the data folder `{data['root']}`"
    else:
        name = "the embedded synthetic shapes (`datamodules.SyntheticShapes`)"
    crops = f"; crops `{_flow(data['crops'])}`" if data.get("crops") else ""
    return f"{name}, {data.get('num_points', '?')} points per cloud, batch {data.get('batch_size', '?')}{crops}"


def _recipe_lines(config: dict[str, Any]) -> list[str]:
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    lines = [f"- `{name}`: `{_flow(model[name])}`"
             for name in RECIPE_SECTIONS if model.get(name) is not None]
    epochs = (config.get("trainer") or {}).get("max_epochs") if isinstance(config.get("trainer"), dict) else None
    if epochs is not None:
        lines.append(f"- `trainer.max_epochs`: {epochs}")
    return lines or ["- not recorded in the checkpoint"]


def _probe_lines(probes: list[dict[str, Any]]) -> list[str]:
    if not probes:
        return ["No probe figures are stored in the checkpoint (it was saved before a probe ran, or without one)."]
    lines = ["| metric | value | step |", "|---|---|---|"]
    for probe in probes:
        for name, value in probe["metrics"].items():
            shown = f"{value:.2f} %" if name != "svm_c" else f"{value:g}"
            lines.append(f"| {name} | {shown} | {probe.get('step', '?')} |")
    lines += ["", "Protocol" + ("s:" if len(probes) > 1 else ":")] + [f"- {p['protocol']}" for p in probes]
    return lines


def model_card(encoder: CheckpointEncoder, fields: dict[str, Any], title: str) -> str:
    """The ``README.md`` of an exported folder (also stored in graph files): Markdown text."""
    config = training_config(encoder)
    name = encoder.class_path.rsplit(".", 1)[-1]
    n, step = fields["num_points"], encoder.global_step
    lines = [
        f"# {title}",
        "",
        f"The {encoder.network} backbone ({name}, a {fields['out_dim']}-d global feature) of a pointdwc "
        "(Distillation with Contrast) self-supervised pretraining run, exported by "
        f"`pointdwc export` {fields['pointdwc_version']}.",
        "",
        "## Use",
        "",
        "```python",
        "from backbones import load_pretrained          # pip install 'pointdwc[deploy]'",
        "encoder = load_pretrained(\"THIS_FOLDER_OR_HUB_ID\")",
        f"feature = encoder(points).global_feature      # points (B, {n}, 3) -> ({fields['out_dim']},) each",
        "```",
        "",
        f"Input: `points` of shape (batch, {n}, 3), float32, {NORMALISATION}. "
        f"An ONNX or `.pt2` export of it takes exactly {n} points per cloud (a dynamic batch); "
        f"{GROUPING.get(name, 'the whole forward is traced into the graph')}. Only the normalisation runs outside.",
        "",
        "## Pretraining",
        "",
        f"- data: {_data_line(config)}",
        f"- steps: {step if step is not None else 'not recorded'}",
        f"- backbone: `{encoder.class_path}` `{_flow(encoder.init_args)}`",
        *_recipe_lines(config),
        "",
        "## Probe figures stored in the checkpoint",
        "",
        *_probe_lines(encoder.probes),
        "",
        "## Provenance",
        "",
        f"- checkpoint `{encoder.checkpoint.name}`, sha256 `{encoder.sha256}`",
        f"- network: {encoder.network}; backbone spec from {encoder.spec_source}",
        "",
    ]
    return "\n".join(lines)
