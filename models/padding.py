"""Pad images to a multiple of a network's stride and crop outputs back.

Networks accept any ``(H, W)``: they pad internally (reflect where possible, replicate otherwise)
and crop their outputs so that callers never see the padding.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor


def padded_size(size: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``size``."""
    return int(math.ceil(size / multiple) * multiple)


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad ``x`` (B, C, H, W) at the bottom/right to multiples of ``multiple``.

    Returns the padded tensor (B, C, H', W') and the original ``(H, W)``.
    Reflect padding is used when the pad is smaller than the side, replicate otherwise.
    """
    height, width = int(x.shape[-2]), int(x.shape[-1])
    pad_h = padded_size(height, multiple) - height
    pad_w = padded_size(width, multiple) - width
    if pad_h == 0 and pad_w == 0:
        return x, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (height, width)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop the trailing two dims of ``x`` (..., H', W') to ``size`` = (H, W) from the top-left."""
    return x[..., : size[0], : size[1]]


def scaled_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Size of a feature map at ``1/stride`` of ``size``, rounding up (covers the unpadded image)."""
    return (math.ceil(size[0] / stride), math.ceil(size[1] / stride))


def upsample_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``x`` (B, C, h, w) to ``size`` (align_corners=False)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


__all__ = ["crop_to", "pad_to_multiple", "padded_size", "scaled_size", "upsample_to"]
