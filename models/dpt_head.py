"""DPT head (Ranftl et al.) for ViT features with a patch size that need not be a power of two.

Four ViT feature maps (B, C, h, w) on the patch grid are projected (1x1 convs to ``out_channels``),
resized to 4x, 2x, 1x and 0.5x the grid (transposed convs / strided conv), mapped to ``features``
channels and fused coarse-to-fine by residual fusion blocks that resize to the next level's exact size
(so odd grids such as 37x37 for 518 px / 14 work). smp's ``DPTDecoder`` assumes power-of-two strides,
hence this module. Output of :meth:`DPTHead.forward`: fused feature (B, features, 8h, 8w).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_FEATURES = 64
DEFAULT_OUT_CHANNELS = (48, 96, 192, 384)  # ViT-S setting of Depth Anything / UniMatch-V2
NUM_LEVELS = 4
UPSAMPLE_4X = 4
UPSAMPLE_2X = 2
DOWNSAMPLE_2X = 2
FINAL_SCALE = 2


class ResidualConvUnit(nn.Module):
    """ReLU → 3x3 conv → ReLU → 3x3 conv, plus the input: (B, F, h, w) → (B, F, h, w)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """Residual refinement of x (B, F, h, w)."""
        out = self.conv2(F.relu(self.conv1(F.relu(x))))
        return out + x


class FusionBlock(nn.Module):
    """Add the refined skip feature, refine, resize to ``size`` and project (1x1)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.skip_unit = ResidualConvUnit(features)
        self.unit = ResidualConvUnit(features)
        self.project = nn.Conv2d(features, features, 1)

    def forward(self, x: Tensor, skip: Tensor | None, *, size: tuple[int, int]) -> Tensor:
        """x (B, F, h, w) [+ skip (B, F, h, w)] → (B, F, *size)."""
        if skip is not None:
            x = x + self.skip_unit(skip)
        x = self.unit(x)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.project(x)


class DPTHead(nn.Module):
    """DPT reassemble + fusion on four (B, C, h, w) ViT maps; returns the fused (B, features, 8h, 8w)."""

    def __init__(
        self,
        in_channels: int,
        *,
        features: int = DEFAULT_FEATURES,
        out_channels: Sequence[int] = DEFAULT_OUT_CHANNELS,
    ) -> None:
        super().__init__()
        if len(out_channels) != NUM_LEVELS:
            raise ValueError(f"out_channels needs {NUM_LEVELS} values, got {len(out_channels)}")
        c1, c2, _, c4 = out_channels
        self.features = features
        self.projects = nn.ModuleList([nn.Conv2d(in_channels, c, 1) for c in out_channels])
        self.resize = nn.ModuleList(
            [
                nn.ConvTranspose2d(c1, c1, UPSAMPLE_4X, stride=UPSAMPLE_4X),
                nn.ConvTranspose2d(c2, c2, UPSAMPLE_2X, stride=UPSAMPLE_2X),
                nn.Identity(),
                nn.Conv2d(c4, c4, 3, stride=DOWNSAMPLE_2X, padding=1),
            ]
        )
        self.layer_rn = nn.ModuleList(
            [nn.Conv2d(c, features, 3, padding=1, bias=False) for c in out_channels]
        )
        self.fusion = nn.ModuleList([FusionBlock(features) for _ in range(NUM_LEVELS)])

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """feats: four (B, C, h, w) maps → fused feature (B, features, 8h, 8w)."""
        levels = [
            rn(resize(project(f)))
            for f, project, resize, rn in zip(feats, self.projects, self.resize, self.layer_rn, strict=True)
        ]
        l1, l2, l3, l4 = levels
        out_size = (l1.shape[-2] * FINAL_SCALE, l1.shape[-1] * FINAL_SCALE)
        path = self.fusion[3](l4, None, size=tuple(l3.shape[-2:]))
        path = self.fusion[2](path, l3, size=tuple(l2.shape[-2:]))
        path = self.fusion[1](path, l2, size=tuple(l1.shape[-2:]))
        return self.fusion[0](path, l1, size=out_size)
