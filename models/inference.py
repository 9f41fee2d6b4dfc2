"""Class probabilities from a segmentation network: whole images and sliding windows.

Both functions run under ``torch.inference_mode`` with the model in eval mode (its previous mode is
restored), compute on the model's device and return probabilities on the input's device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Blend = Literal["gaussian", "uniform"]
GAUSSIAN_SIGMA_FRACTION = 1.0 / 8.0  # sigma = window / 8 (nnU-Net style)
MIN_BLEND_WEIGHT = 1e-3  # keeps window borders from getting zero weight


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _softmax(model: nn.Module, images: Tensor, *, tta_flip: bool) -> Tensor:
    """Softmax (B, K, H, W) of ``images`` (B, C, H, W), averaged over flips when ``tta_flip``."""
    probs = torch.softmax(model(images).float(), dim=1)
    if not tta_flip:
        return probs
    for dims in ((-1,), (-2,)):
        flipped = torch.softmax(model(torch.flip(images, dims)).float(), dim=1)
        probs = probs + torch.flip(flipped, dims)
    return probs / 3.0


def predict_proba(model: nn.Module, images: Tensor, *, tta_flip: bool = False) -> Tensor:
    """Softmax probabilities (B, K, H, W) for ``images`` (B, C, H, W) float32.

    ``tta_flip`` averages the identity, horizontal-flip and vertical-flip predictions.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    device = _model_device(model)
    with _eval_mode(model), torch.inference_mode():
        probs = _softmax(model, images.to(device), tta_flip=tta_flip)
    return probs.to(images.device)


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of ``window`` covering ``[0, size)``; the last one ends at ``size``."""
    if size <= window:
        return [0]
    starts = list(range(0, size - window, stride))
    starts.append(size - window)
    return sorted(set(starts))


def blend_weights(window: int, blend: Blend, *, device: torch.device) -> Tensor:
    """Per-pixel weights (window, window): Gaussian centred in the window, or ones."""
    if blend == "uniform":
        return torch.ones((window, window), device=device)
    if blend != "gaussian":
        raise ValueError(f"blend must be 'gaussian' or 'uniform', got {blend!r}")
    sigma = window * GAUSSIAN_SIGMA_FRACTION
    coords = torch.arange(window, device=device, dtype=torch.float32) - (window - 1) / 2.0
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    weights = g[:, None] * g[None, :]
    return (weights / weights.max()).clamp_min(MIN_BLEND_WEIGHT)


def sliding_window_proba(
    model: nn.Module,
    image: Tensor,
    *,
    window: int,
    overlap: float = 0.5,
    batch_size: int = 4,
    blend: Blend = "gaussian",
    tta_flip: bool = False,
) -> Tensor:
    """Blended softmax probabilities (B, K, H, W) over windows of ``window``×``window`` pixels.

    ``image`` is (C, H, W) or (B, C, H, W); windows overlap by ``overlap`` (fraction in [0, 1)), up to
    ``batch_size`` windows are predicted at once. Images smaller than the window are padded (reflect
    where possible) and the result cropped back.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if window < 1 or batch_size < 1:
        raise ValueError("window and batch_size must be >= 1")
    images = image.unsqueeze(0) if image.ndim == 3 else image
    if images.ndim != 4:
        raise ValueError(f"image must be (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
    device = _model_device(model)
    batch, _, height, width = images.shape
    pad_h, pad_w = max(0, window - height), max(0, window - width)
    stride = max(1, math.floor(window * (1.0 - overlap)))
    weights = blend_weights(window, blend, device=device)
    with _eval_mode(model), torch.inference_mode():
        work = images.to(device)
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            work = F.pad(work, (0, pad_w, 0, pad_h), mode=mode)
        full_h, full_w = int(work.shape[-2]), int(work.shape[-1])
        boxes = [
            (y, x)
            for y in window_starts(full_h, window, stride)
            for x in window_starts(full_w, window, stride)
        ]
        accum: Tensor | None = None
        norm = torch.zeros((full_h, full_w), device=device)
        for y, x in boxes:
            norm[y : y + window, x : x + window] += weights
        for b in range(batch):
            for start in range(0, len(boxes), batch_size):
                chunk = boxes[start : start + batch_size]
                tiles = torch.stack([work[b, :, y : y + window, x : x + window] for y, x in chunk])
                probs = _softmax(model, tiles, tta_flip=tta_flip)
                if accum is None:
                    accum = torch.zeros((batch, probs.shape[1], full_h, full_w), device=device)
                for (y, x), prob in zip(chunk, probs, strict=True):
                    accum[b, :, y : y + window, x : x + window] += prob * weights
        assert accum is not None
        result = (accum / norm)[..., :height, :width]
    return result.to(images.device)


__all__ = ["blend_weights", "predict_proba", "sliding_window_proba", "window_starts"]
