"""Building blocks shared by the weak-to-strong consistency methods (FixMatch, UniMatch, SLUM-i, V2).

Shapes: B batch, K classes, H x W pixels. Pseudo-labels are always computed from detached logits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = 255


@dataclass(frozen=True)
class PseudoLabels:
    """Pseudo-labels of an unlabeled batch.

    Attributes:
        label: (B, H, W) int64 argmax class.
        conf: (B, H, W) float max softmax probability.
        valid: (B, H, W) bool, False where the pixel is ignored (no data, cutout, padding).
    """

    label: Tensor
    conf: Tensor
    valid: Tensor

    def mixed(self, other: PseudoLabels, box: Tensor) -> PseudoLabels:
        """CutMix: take ``other`` inside ``box`` (B, H, W) bool and ``self`` outside."""
        return PseudoLabels(
            label=torch.where(box, other.label, self.label),
            conf=torch.where(box, other.conf, self.conf),
            valid=torch.where(box, other.valid, self.valid),
        )

    def flipped(self) -> PseudoLabels:
        """The batch in reverse order (UniMatch V2 mixes each image with its mirror in the batch)."""
        return PseudoLabels(label=self.label.flip(0), conf=self.conf.flip(0), valid=self.valid.flip(0))


def pseudo_labels(logits: Tensor, ignore_mask: Tensor | None = None) -> PseudoLabels:
    """Detached argmax / confidence of (B, K, H, W) logits; ``ignore_mask`` (B, H, W) is 255 where ignored."""
    probs = logits.detach().softmax(dim=1)
    conf, label = probs.max(dim=1)
    valid = torch.ones_like(label, dtype=torch.bool) if ignore_mask is None else ignore_mask != IGNORE_INDEX
    return PseudoLabels(label=label, conf=conf, valid=valid)


def masked_consistency_loss(
    logits: Tensor, target: PseudoLabels, keep: Tensor, weight: Tensor | None = None
) -> Tensor:
    """UniMatch's unlabeled loss: ``sum(CE * keep * valid * weight) / #valid``.

    Args:
        logits: (B, K, H, W) student logits.
        target: pseudo-labels (detached).
        keep: (B, H, W) bool, the confidence gate (e.g. ``conf >= threshold``).
        weight: optional (B, H, W) float per-pixel weight (SLUM-i reliability).

    Returns:
        A scalar; 0 (with a graph) when no pixel is valid.
    """
    ce = F.cross_entropy(logits, target.label, reduction="none")
    gate = (keep & target.valid).to(ce.dtype)
    if weight is not None:
        gate = gate * weight.to(ce.dtype)
    denom = target.valid.sum().clamp(min=1).to(ce.dtype)
    return (ce * gate).sum() / denom


def supervised_ce(logits: Tensor, label: Tensor) -> Tensor:
    """Mean cross-entropy over non-ignored pixels (ignore index 255); 0 when every pixel is ignored."""
    ce = F.cross_entropy(logits, label, ignore_index=IGNORE_INDEX, reduction="sum")
    return ce / (label != IGNORE_INDEX).sum().clamp(min=1).to(ce.dtype)


def paste(base: Tensor, source: Tensor, box: Tensor) -> Tensor:
    """CutMix images (B, C, H, W): ``source`` inside ``box`` (B, H, W) bool, ``base`` outside."""
    return torch.where(box.unsqueeze(1), source, base)


def ignore_mask_of(batch: Mapping[str, Tensor], key: str, like: Tensor) -> Tensor:
    """``batch[key]`` if present, else an all-zero (nothing ignored) (B, H, W) mask shaped like ``like``."""
    mask = batch.get(key)
    if mask is None:
        return torch.zeros(like.shape[0], *like.shape[-2:], dtype=torch.long, device=like.device)
    return mask


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily put ``model`` in eval mode (restoring its previous mode) under ``torch.no_grad``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def mask_ratio(keep: Tensor, valid: Tensor) -> float:
    """Fraction of valid pixels that pass the gate (logged by every method)."""
    n_valid = int(valid.sum())
    return float((keep & valid).sum()) / max(n_valid, 1)
