"""The classification head of fine-tuning: Point-MAE's ``cls_head_finetune``.

global feature ([CLS] ‖ max for PoinT-ViT) → Linear 256 → BatchNorm → ReLU → Dropout 0.5 →
Linear 256 → BatchNorm → ReLU → Dropout 0.5 → Linear to the classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass
class ClassifierHeadConfig:
    """Widths and dropout of the head."""

    hidden_dims: tuple[int, ...] = (256, 256)
    dropout: float = 0.5


class ClassifierHead(nn.Module):
    """MLP from a backbone's global feature (B, in_dim) to class logits (B, num_classes)."""

    def __init__(self, in_dim: int, num_classes: int, config: ClassifierHeadConfig | None = None) -> None:
        super().__init__()
        config = config or ClassifierHeadConfig()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
        layers: list[nn.Module] = []
        width = in_dim
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.mlp = nn.Sequential(*layers)
        self.num_classes = num_classes

    def forward(self, feature: Tensor) -> Tensor:
        """(B, in_dim) -> (B, num_classes) logits."""
        return self.mlp(feature)
