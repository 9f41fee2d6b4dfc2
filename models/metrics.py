"""Confusion-matrix segmentation scores (per-class IoU, mIoU, F1, pixel accuracy).

``ConfusionMatrix.update`` accepts class-id predictions (N, H, W) or scores (N, K, H, W) (argmax is taken),
as torch tensors or numpy arrays; pixels whose target equals ``ignore_index`` are skipped. Rows of the
matrix are targets, columns predictions. Classes absent from both target and prediction get ``nan``
IoU/F1 and are left out of the means (nan-mean, as ST++/UniMatch do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

IGNORE_INDEX = 255

ArrayLike = Tensor | npt.NDArray[Any]


@dataclass(frozen=True)
class SegmentationScores:
    """Scores from a confusion matrix; per-class tuples are indexed by class id."""

    iou: tuple[float, ...]
    miou: float
    f1: tuple[float, ...]
    mean_f1: float
    pixel_accuracy: float
    num_pixels: int
    confusion: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nan becomes ``None``)."""

        def clean(value: float) -> float | None:
            return None if math.isnan(value) else float(value)

        return {
            "iou": [clean(v) for v in self.iou],
            "miou": clean(self.miou),
            "f1": [clean(v) for v in self.f1],
            "mean_f1": clean(self.mean_f1),
            "pixel_accuracy": clean(self.pixel_accuracy),
            "num_pixels": self.num_pixels,
            "confusion": [list(row) for row in self.confusion],
        }


def _as_tensor(value: ArrayLike) -> Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value.detach()


def _nanmean(values: npt.NDArray[np.float64]) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


class ConfusionMatrix:
    """Accumulating K×K confusion matrix (int64, on CPU)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64)

    def reset(self) -> None:
        """Zero the counts."""
        self.matrix.zero_()

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Add pixels: ``pred`` (N, H, W) class ids or (N, K, H, W) scores; ``target`` (N, H, W) ids."""
        pred_t = _as_tensor(pred)
        target_t = _as_tensor(target)
        if pred_t.ndim == target_t.ndim + 1:
            pred_t = pred_t.argmax(dim=1)
        if pred_t.shape != target_t.shape:
            raise ValueError(f"pred {tuple(pred_t.shape)} and target {tuple(target_t.shape)} differ in shape")
        pred_flat = pred_t.reshape(-1).to(device="cpu", dtype=torch.int64)
        target_flat = target_t.reshape(-1).to(device="cpu", dtype=torch.int64)
        keep = target_flat != self.ignore_index
        pred_flat, target_flat = pred_flat[keep], target_flat[keep]
        if target_flat.numel() and (int(target_flat.min()) < 0 or int(target_flat.max()) >= self.num_classes):
            raise ValueError(
                f"target holds ids outside [0, {self.num_classes}) other than {self.ignore_index}"
            )
        if pred_flat.numel() and (int(pred_flat.min()) < 0 or int(pred_flat.max()) >= self.num_classes):
            raise ValueError(f"pred holds ids outside [0, {self.num_classes})")
        counts = torch.bincount(target_flat * self.num_classes + pred_flat, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add the counts of another matrix of the same size."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self.matrix += other.matrix

    def compute(self) -> SegmentationScores:
        """Per-class IoU and F1, their nan-means, and pixel accuracy."""
        matrix = self.matrix.numpy().astype(np.float64)
        tp = np.diag(matrix)
        fp = matrix.sum(axis=0) - tp
        fn = matrix.sum(axis=1) - tp
        total = matrix.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            iou_den = tp + fp + fn
            iou = np.where(iou_den > 0, tp / np.where(iou_den > 0, iou_den, 1), np.nan)
            f1_den = 2 * tp + fp + fn
            f1 = np.where(f1_den > 0, 2 * tp / np.where(f1_den > 0, f1_den, 1), np.nan)
        accuracy = float(tp.sum() / total) if total > 0 else float("nan")
        return SegmentationScores(
            iou=tuple(float(v) for v in iou),
            miou=_nanmean(iou),
            f1=tuple(float(v) for v in f1),
            mean_f1=_nanmean(f1),
            pixel_accuracy=accuracy,
            num_pixels=int(total),
            confusion=tuple(tuple(int(v) for v in row) for row in self.matrix.tolist()),
        )


__all__ = ["IGNORE_INDEX", "ConfusionMatrix", "SegmentationScores"]
