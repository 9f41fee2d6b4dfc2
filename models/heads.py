"""Small heads shared by several networks: projection head, feature perturbation, output assembly."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slumwatch.models.base import LOGITS, LOGITS_FP, PROJ
from slumwatch.models.padding import crop_to, scaled_size, upsample_to

DEFAULT_PROJ_DIM = 128
FP_DROPOUT = 0.5
PROJ_STRIDE = 4
"""Projection features are produced at 1/4 of the input resolution (SLUM-i's prototype grid)."""


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


class HasOutputHeads(Protocol):
    """A network with a classifier (F → K) and a projection head (F → D) on the same decoded feature."""

    @property
    def classifier(self) -> nn.Module: ...

    @property
    def proj_head(self) -> nn.Module: ...


def decoded_outputs(
    model: HasOutputHeads,
    decoded: Tensor,
    *,
    batch: int,
    padded: Tensor,
    size: tuple[int, int],
    fp: bool,
    proj: bool,
) -> dict[str, Tensor]:
    """The ``forward_dict`` outputs of a network from its decoded feature map.

    Args:
        model: the network; its ``classifier`` maps F → K logits, its ``proj_head`` F → D (when ``proj``).
        decoded: (B, F, h, w), or (2B, F, h, w) when ``fp`` (clean rows first, perturbed rows after, as
            :func:`perturb_features` stacks them).
        batch: B.
        padded: the padded input (B, C, H', W'); logits are upsampled to (H', W').
        size: (H, W) of the unpadded input the outputs are cropped to.
        fp: split the FP logits off the second half.
        proj: add the projection of the clean rows, resampled to the 1/4 grid.

    Returns:
        ``logits`` (B, K, H, W); ``logits_fp`` (B, K, H, W) when ``fp``; ``proj`` (B, D, H/4, W/4) when
        ``proj``.
    """
    padded_size = (int(padded.shape[-2]), int(padded.shape[-1]))
    logits = crop_to(upsample_to(model.classifier(decoded), padded_size), size)
    out: dict[str, Tensor] = {LOGITS: logits[:batch]}
    if fp:
        out[LOGITS_FP] = logits[batch:]
    if proj:
        quarter = scaled_size(padded_size, PROJ_STRIDE)
        feature = F.interpolate(decoded[:batch], size=quarter, mode="bilinear", align_corners=False)
        out[PROJ] = model.proj_head(crop_to(feature, scaled_size(size, PROJ_STRIDE)))
    return out
