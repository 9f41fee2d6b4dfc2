"""Class-Aware Adaptive Thresholding (CAAT), SLUM-i section 3.2.

A per-class threshold vector ``tau`` (K,) follows an exponential moving average of the mean confidence of
the pixels predicted as each class in the current batch, clipped to ``[tau_low, tau_high]``::

    tau_c <- clip(m * tau_c + (1 - m) * mean_{pixels with argmax c} conf, tau_low, tau_high)

Classes absent from the batch keep their threshold. A pixel passes when its confidence is at least the
threshold of its predicted class. Under DDP the per-class sums and counts are summed over ranks before
the update (:mod:`~slumwatch.models.methods.sync`), so "the batch" is the global batch and every rank
holds the same thresholds. The idea is FreeMatch's self-adaptive class thresholds.

Defaults (``docs/methods.md``): momentum 0.999 (FreeMatch's EMA momentum; the SLUM-i text does not
give it), ``tau_high`` 0.95 (paper, after FixMatch / UniMatch), ``tau_low`` 0.7 (chosen: the paper's
value is lost in the text), initial thresholds ``tau_low`` (chosen: FreeMatch starts at 1/K, which the
clip raises to ``tau_low``; the curriculum is then permissive early, stricter later, as the paper
describes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from slumwatch.models.methods.sync import all_reduce_sum

DEFAULT_MOMENTUM = 0.999
DEFAULT_TAU_LOW = 0.7
DEFAULT_TAU_HIGH = 0.95


@dataclass(frozen=True)
class CAATConfig:
    """CAAT hyper-parameters.

    Attributes:
        num_classes: K.
        momentum: EMA momentum m (weight of the old threshold).
        tau_low: lower clip (chosen default 0.7; not recoverable from the paper text).
        tau_high: upper clip (0.95, paper).
        init: initial threshold for every class; ``None`` = ``tau_low``.
    """

    num_classes: int = 2
    momentum: float = DEFAULT_MOMENTUM
    tau_low: float = DEFAULT_TAU_LOW
    tau_high: float = DEFAULT_TAU_HIGH
    init: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {self.momentum}")
        if not 0.0 <= self.tau_low <= self.tau_high <= 1.0:
            raise ValueError(f"need 0 <= tau_low <= tau_high <= 1, got {self.tau_low}, {self.tau_high}")
        if self.num_classes < 1:
            raise ValueError("num_classes must be >= 1")


class ClassAwareThreshold:
    """The CAAT state (K,) and its update / gating rules."""

    def __init__(self, config: CAATConfig) -> None:
        self.config = config
        start = config.tau_low if config.init is None else config.init
        self.thresholds = torch.full((config.num_classes,), float(start)).clamp(
            config.tau_low, config.tau_high
        )

    def _to(self, device: torch.device) -> Tensor:
        if self.thresholds.device != device:
            self.thresholds = self.thresholds.to(device)
        return self.thresholds

    @torch.no_grad()
    def update(self, conf: Tensor, label: Tensor, valid: Tensor | None = None) -> Tensor:
        """EMA-update the thresholds from one batch and return them (K,).

        Args:
            conf: (B, H, W) max softmax probability of the weak view (detached).
            label: (B, H, W) its argmax class.
            valid: (B, H, W) bool; ignored pixels do not count.
        """
        cfg = self.config
        tau = self._to(conf.device)
        flat_label = label.reshape(-1)
        flat_conf = conf.detach().reshape(-1).to(tau.dtype)
        if valid is not None:
            keep = valid.reshape(-1)
            flat_label, flat_conf = flat_label[keep], flat_conf[keep]
        sums = torch.zeros_like(tau).index_add_(0, flat_label, flat_conf)
        counts = torch.bincount(flat_label, minlength=cfg.num_classes).to(tau.dtype)
        # Under DDP every rank sees its own share of the batch: pool the class sums and counts so the
        # thresholds follow the whole (global) batch and stay identical on every rank.
        sums, counts = all_reduce_sum(torch.stack([sums, counts])).unbind(0)
        present = counts > 0
        means = sums / counts.clamp(min=1)
        updated = cfg.momentum * tau + (1.0 - cfg.momentum) * means
        self.thresholds = torch.where(present, updated, tau).clamp(cfg.tau_low, cfg.tau_high)
        return self.thresholds

    def threshold_map(self, label: Tensor) -> Tensor:
        """(B, H, W) threshold of each pixel's predicted class."""
        return self._to(label.device)[label]

    def gate(self, conf: Tensor, label: Tensor) -> Tensor:
        """(B, H, W) bool: ``conf >= tau[label]``."""
        return conf >= self.threshold_map(label).to(conf.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds.detach().cpu().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        thresholds = torch.as_tensor(state["thresholds"], dtype=torch.float32)
        if thresholds.shape != (self.config.num_classes,):
            raise ValueError(f"thresholds shape {tuple(thresholds.shape)} != ({self.config.num_classes},)")
        self.thresholds = thresholds.to(self.thresholds.device)
