"""Decision-threshold calibration for the binary slum class on held-out pixels."""

from __future__ import annotations

from torch import Tensor

__all__ = ["DEFAULT_THRESHOLDS", "best_f1_threshold"]

THRESHOLD_STEPS = 19
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * (i + 1), 2) for i in range(THRESHOLD_STEPS))
"""0.05, 0.10, ..., 0.95"""


def best_f1_threshold(
    proba: Tensor,
    target: Tensor,
    *,
    ignore_index: int = 255,
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
) -> tuple[float, float]:
    """The probability threshold that maximises the positive class's F1.

    F1 balances false positives against false negatives, so the chosen threshold also keeps
    the predicted area close to the true area, which is what yearly area estimates need.

    Args:
        proba: (N,) or any shape, P(positive) in [0, 1].
        target: same shape, 1 positive, 0 negative, ``ignore_index`` ignored.
    Returns:
        (threshold, F1 at that threshold); (0.5, nan) when there are no labelled pixels.
    """
    if proba.shape != target.shape:
        raise ValueError(f"proba {tuple(proba.shape)} and target {tuple(target.shape)} differ")
    keep = target != ignore_index
    p = proba[keep].float()
    t = target[keep] == 1
    if p.numel() == 0:
        return 0.5, float("nan")
    best = (0.5, -1.0)
    positives = t.sum()
    for thr in thresholds:
        pred = p >= thr
        tp = (pred & t).sum()
        denom = pred.sum() + positives
        f1 = float(2 * tp / denom) if denom > 0 else 0.0
        if f1 > best[1]:
            best = (thr, f1)
    return best
