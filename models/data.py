"""In-memory tile dataset and input normalisation.

Samples are dicts ``{"image": (C, H, W) float32 in [0, 1], "label": (H, W) int64}`` (``label`` only
when labels are given; 255 = ignore). Randomness is drawn from ``numpy.random.default_rng([seed, epoch,
index])``, so a sample depends only on (seed, epoch, index): identical across DataLoader workers,
processes and resumed runs. The engine calls :meth:`TileDataset.set_epoch` before each epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import Dataset

from slumwatch.models.augment import AugmentConfig, weak_augment

DEFAULT_LOW_PERCENTILE = 2.0
DEFAULT_HIGH_PERCENTILE = 98.0
BAND_AXIS = -3
MIN_RANGE = 1e-6

Sample = dict[str, Any]
SampleTransform = Callable[[Sample, np.random.Generator], Sample]


def scale_to_unit(arr: npt.ArrayLike, low: npt.ArrayLike, high: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Per-band linear scaling to [0, 1]: ``clip((arr - low) / (high - low), 0, 1)`` as float32.

    ``arr`` is (C, H, W) or (N, C, H, W) of any numeric dtype (uint8, uint16, float); ``low`` / ``high``
    are per-band values (C,) (e.g. 2nd / 98th percentiles of the valid pixels) or scalars.
    """
    data = np.asarray(arr, dtype=np.float32)
    low_a = np.asarray(low, dtype=np.float32)
    high_a = np.asarray(high, dtype=np.float32)
    if low_a.ndim == 1:
        shape = [1] * data.ndim
        shape[BAND_AXIS] = low_a.shape[0]
        low_a, high_a = low_a.reshape(shape), high_a.reshape(shape)
    span = np.maximum(high_a - low_a, MIN_RANGE)
    return np.clip((data - low_a) / span, 0.0, 1.0).astype(np.float32)


def band_percentiles(
    images: npt.ArrayLike,
    *,
    lower: float = DEFAULT_LOW_PERCENTILE,
    upper: float = DEFAULT_HIGH_PERCENTILE,
    nodata: float | None = 0,
) -> tuple[list[float], list[float]]:
    """Per-band (low, high) percentiles of ``images`` (C, H, W) or (N, C, H, W), skipping ``nodata``."""
    data = np.asarray(images)
    bands = np.moveaxis(data, BAND_AXIS, 0).reshape(data.shape[BAND_AXIS], -1)
    lows: list[float] = []
    highs: list[float] = []
    for band in bands:
        values = band if nodata is None else band[band != nodata]
        if values.size == 0:
            values = band
        lo, hi = np.percentile(values, [lower, upper])
        lows.append(float(lo))
        highs.append(float(hi))
    return lows, highs


class TileDataset(Dataset[Sample]):
    """Tiles held in memory, optionally normalised, weakly augmented and transformed.

    Args:
        images: (N, C, H, W) array or a sequence of (C, H, W) arrays (any numeric dtype).
        labels: (N, H, W) array or sequence of (H, W) arrays, or ``None`` (unlabeled).
        low, high: per-band bounds for :func:`scale_to_unit`; ``None``: images are already floats in [0, 1].
        augment: weak augmentation; ``None`` for none (validation).
        seed: base seed of the per-sample generator.
        transform: optional ``(sample, rng) -> sample`` applied last (e.g. strong views for SSL methods).
    """

    def __init__(
        self,
        images: npt.NDArray[Any] | Sequence[npt.NDArray[Any]],
        labels: npt.NDArray[Any] | Sequence[npt.NDArray[Any]] | None = None,
        *,
        low: Sequence[float] | None = None,
        high: Sequence[float] | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        transform: SampleTransform | None = None,
    ) -> None:
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if (low is None) != (high is None):
            raise ValueError("give both low and high, or neither")
        self.images = images
        self.labels = labels
        self.low = None if low is None else np.asarray(low, dtype=np.float32)
        self.high = None if high is None else np.asarray(high, dtype=np.float32)
        self.augment = augment
        self.seed = seed
        self.transform = transform
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of ``epoch`` (called by the engine before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def _image(self, index: int) -> npt.NDArray[np.float32]:
        raw = np.asarray(self.images[index])
        if self.low is not None and self.high is not None:
            return scale_to_unit(raw, self.low, self.high)
        if not np.issubdtype(raw.dtype, np.floating):
            raise ValueError("integer images need low/high bounds (see scale_to_unit)")
        return raw.astype(np.float32, copy=False)

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image = self._image(index)
        label = None if self.labels is None else np.asarray(self.labels[index]).astype(np.int64)
        if self.augment is not None:
            image, label = weak_augment(image, label, config=self.augment, rng=rng)
        sample: Sample = {"image": torch.from_numpy(np.ascontiguousarray(image))}
        if label is not None:
            sample["label"] = torch.from_numpy(np.ascontiguousarray(label))
        sample["index"] = index
        if self.transform is not None:
            sample = self.transform(sample, rng)
        return sample


def to_tensor_image(image: npt.NDArray[Any]) -> Tensor:
    """(C, H, W) array → float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))


__all__ = ["Sample", "SampleTransform", "TileDataset", "band_percentiles", "scale_to_unit", "to_tensor_image"]
