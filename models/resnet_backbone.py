"""The ResNet backbone shared by DeepLabV3+, DeepLabV2 and PSPNet (smp encoders, no download)."""

from __future__ import annotations

from segmentation_models_pytorch.encoders import get_encoder
from torch import nn

from slumwatch.models.base import SegmentationModel

__all__ = ["RESNET_DEPTH", "RESNET_STEM_KEY", "ResNetSegmentationModel", "resnet_encoder"]

RESNET_DEPTH = 5
"""Encoder stages used (stem + 4 residual stages)."""
RESNET_STEM_KEY = "conv1.weight"
"""torchvision ResNet key of the stem convolution (adapted when ``in_channels`` != 3)."""


def resnet_encoder(name: str, *, in_channels: int, output_stride: int) -> nn.Module:
    """A randomly initialised smp ResNet encoder with dilation for ``output_stride``.

    Pretrained weights are loaded later from a local file (:mod:`slumwatch.models.weights`).
    """
    return get_encoder(
        name, in_channels=in_channels, depth=RESNET_DEPTH, weights=None, output_stride=output_stride
    )


class ResNetSegmentationModel(SegmentationModel):
    """A :class:`SegmentationModel` whose ``backbone`` is a torchvision-layout ResNet."""

    def first_conv_key(self) -> str | None:
        """torchvision ResNet key of the stem convolution."""
        return RESNET_STEM_KEY
