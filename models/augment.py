"""Weak (geometric) augmentation of an image/label pair, driven by an explicit numpy generator.

Image (C, H, W) float32, label (H, W) int64 (255 = ignore). Flips, 90° rotations (any multiple of
90° on square tiles, 0/180° otherwise so shapes stay batchable) and an optional SegSlum/ST++-style
random resized crop: resize by a random factor in ``scale_range`` (bilinear image, nearest label),
then a random ``crop_size`` crop, padding with 0 (image) / 255 (label) when the resized tile is smaller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

IGNORE_INDEX = 255
DEFAULT_SCALE_RANGE = (0.5, 2.0)
HALF = 0.5
QUARTER_TURNS = 4
HALF_TURN = 2

FloatArray = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class AugmentConfig:
    """Which weak augmentations to apply (each flip with probability 0.5)."""

    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    crop_size: int | None = None
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE


def random_resized_crop(
    image: FloatArray,
    label: LabelArray | None,
    *,
    crop_size: int,
    scale_range: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[FloatArray, LabelArray | None]:
    """Resize by a random factor, then crop (and pad) to ``crop_size``×``crop_size``."""
    _, height, width = image.shape
    factor = float(rng.uniform(*scale_range))
    new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
    img_t = F.interpolate(
        torch.from_numpy(image)[None], size=(new_h, new_w), mode="bilinear", align_corners=False
    )[0]
    lab_t = None
    if label is not None:
        lab_t = F.interpolate(
            torch.from_numpy(label)[None, None].float(), size=(new_h, new_w), mode="nearest"
        )[0, 0]
    pad_h, pad_w = max(0, crop_size - new_h), max(0, crop_size - new_w)
    if pad_h or pad_w:
        img_t = F.pad(img_t, (0, pad_w, 0, pad_h), value=0.0)
        if lab_t is not None:
            lab_t = F.pad(lab_t, (0, pad_w, 0, pad_h), value=float(IGNORE_INDEX))
    top = int(rng.integers(0, img_t.shape[-2] - crop_size + 1))
    left = int(rng.integers(0, img_t.shape[-1] - crop_size + 1))
    out_img = img_t[:, top : top + crop_size, left : left + crop_size].contiguous().numpy()
    out_lab = None
    if lab_t is not None:
        out_lab = lab_t[top : top + crop_size, left : left + crop_size].to(torch.int64).contiguous().numpy()
    return out_img, out_lab


def weak_augment(
    image: FloatArray, label: LabelArray | None, *, config: AugmentConfig, rng: np.random.Generator
) -> tuple[FloatArray, LabelArray | None]:
    """Apply ``config`` to image (C, H, W) and label (H, W) (or ``None``); returns contiguous copies."""
    if config.crop_size is not None:
        image, label = random_resized_crop(
            image, label, crop_size=config.crop_size, scale_range=config.scale_range, rng=rng
        )
    if config.hflip and rng.random() < HALF:
        image, label = image[:, :, ::-1], None if label is None else label[:, ::-1]
    if config.vflip and rng.random() < HALF:
        image, label = image[:, ::-1, :], None if label is None else label[::-1, :]
    if config.rot90:
        square = image.shape[-1] == image.shape[-2]
        turns = int(rng.integers(0, QUARTER_TURNS)) if square else HALF_TURN * int(rng.integers(0, 2))
        if turns:
            image = np.rot90(image, k=turns, axes=(1, 2))
            label = None if label is None else np.rot90(label, k=turns, axes=(0, 1))
    out_label: Any = None if label is None else np.ascontiguousarray(label, dtype=np.int64)
    return np.ascontiguousarray(image, dtype=np.float32), out_label


__all__ = ["AugmentConfig", "random_resized_crop", "weak_augment"]
