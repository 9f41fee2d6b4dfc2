"""SegSlum GRAM branch: texture descriptor of the fused decoder feature.

The Gram matrix (B, C, C) of a feature (B, C, h, w) is treated as a one-channel image and reduced by
two stride-4 convolutions to a (B, 1, C/16, C/16) map, i.e. (B, 1, 16, 16) for the 256-channel
DeepLabV3+ decoder feature, whatever the input size.
"""

from __future__ import annotations

from torch import Tensor, nn

GRAM_HIDDEN_CHANNELS = 8
GRAM_KERNEL = 3
GRAM_STRIDE = 4


def gram_matrix(feature: Tensor, *, normalize: bool = True) -> Tensor:
    """Gram matrix (B, C, C) of ``feature`` (B, C, h, w).

    With ``normalize`` the sum over pixels is divided by ``h * w`` so the value does not grow with the
    tile size (the SegSlum reference uses the raw sum; pass ``normalize=False`` to match it).
    """
    batch, channels, height, width = feature.shape
    flat = feature.reshape(batch, channels, height * width)
    gram = flat @ flat.transpose(1, 2)
    return gram / float(height * width) if normalize else gram


class GramBranch(nn.Module):
    """Gram matrix → conv(1→8, s4) → BN → ReLU → conv(8→1, s4) → ReLU; output (B, 1, C/16, C/16)."""

    def __init__(self, *, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize
        padding = GRAM_KERNEL // 2
        self.reduce = nn.Sequential(
            nn.Conv2d(1, GRAM_HIDDEN_CHANNELS, GRAM_KERNEL, stride=GRAM_STRIDE, padding=padding, bias=False),
            nn.BatchNorm2d(GRAM_HIDDEN_CHANNELS),
            nn.ReLU(inplace=True),
            nn.Conv2d(GRAM_HIDDEN_CHANNELS, 1, GRAM_KERNEL, stride=GRAM_STRIDE, padding=padding, bias=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, feature: Tensor) -> Tensor:
        """Map (B, 1, C/16, C/16) for ``feature`` (B, C, h, w)."""
        return self.reduce(gram_matrix(feature, normalize=self.normalize).unsqueeze(1))
