"""Small heads shared by several networks: projection head and feature perturbation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_PROJ_DIM = 128
FP_DROPOUT = 0.5


class ProjectionHead(nn.Module):
    """1x1 conv → BN → ReLU → 1x1 conv: (B, C, h, w) → (B, D, h, w) embeddings for prototype banks.

    The output is not normalised; the SLUM-i prototype bank L2-normalises it.
    """

    def __init__(self, in_channels: int, *, dim: int = DEFAULT_PROJ_DIM) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 1, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, dim, 1),
        )

    def forward(self, feature: Tensor) -> Tensor:
        """Embeddings (B, D, h, w) of ``feature`` (B, C, h, w)."""
        return self.net(feature)


def perturb_features(feature: Tensor, *, p: float = FP_DROPOUT) -> Tensor:
    """UniMatch feature perturbation: channel dropout (Dropout2d) that is active in train and eval mode.

    Returns ``cat([feature, dropout2d(feature)])`` along the batch dim: (2B, C, h, w) for (B, C, h, w).
    """
    return torch.cat([feature, F.dropout2d(feature, p=p, training=True)], dim=0)
