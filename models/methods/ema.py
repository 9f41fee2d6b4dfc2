"""Exponential-moving-average teacher (UniMatch V2, Mean Teacher).

The teacher is a frozen deep copy of the student (parameters and buffers) kept outside the optimiser;
after every optimiser step::

    decay   = min(1 - 1 / (iteration + 1), max_decay)         (UniMatch V2: max_decay = 0.996)
    teacher = decay * teacher + (1 - decay) * student        (floating-point parameters and buffers)

Integer buffers (BatchNorm's ``num_batches_tracked``) are copied. The teacher is always in eval mode,
its parameters have ``requires_grad = False``, and it is only ever run under ``torch.no_grad``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from slumwatch.models.base import SegmentationModel, unwrap_model

DEFAULT_MAX_DECAY = 0.996


def ema_decay(iteration: int, *, max_decay: float = DEFAULT_MAX_DECAY) -> float:
    """``min(1 - 1 / (iteration + 1), max_decay)``; 0 at iteration 0, so the first update copies."""
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    return min(1.0 - 1.0 / (iteration + 1), max_decay)


class EMATeacher:
    """Lazily built EMA copy of a (possibly DDP-wrapped) segmentation model.

    Args:
        max_decay: the decay cap (0.996 in UniMatch V2).
    """

    def __init__(self, *, max_decay: float = DEFAULT_MAX_DECAY) -> None:
        self.max_decay = max_decay
        self.model: SegmentationModel | None = None
        self._pending: Mapping[str, Any] | None = None

    def ensure(self, student: nn.Module) -> SegmentationModel:
        """The teacher, created from ``student`` on first use (then loaded from a pending state dict)."""
        if self.model is None:
            teacher = copy.deepcopy(unwrap_model(student))
            teacher.eval()
            for param in teacher.parameters():
                param.requires_grad_(False)
                param.grad = None
            if self._pending is not None:
                teacher.load_state_dict(dict(self._pending))
                self._pending = None
            self.model = teacher
        return self.model

    @torch.no_grad()
    def update(self, student: nn.Module, *, iteration: int) -> float:
        """One EMA step towards ``student``; returns the decay used."""
        teacher = self.ensure(student)
        source = unwrap_model(student)
        decay = ema_decay(iteration, max_decay=self.max_decay)
        for p_t, p_s in zip(teacher.parameters(), source.parameters(), strict=True):
            p_t.mul_(decay).add_(p_s.detach(), alpha=1.0 - decay)
        for b_t, b_s in zip(teacher.buffers(), source.buffers(), strict=True):
            if b_t.is_floating_point():
                b_t.mul_(decay).add_(b_s.detach(), alpha=1.0 - decay)
            else:
                b_t.copy_(b_s)
        teacher.eval()
        return decay

    def state_dict(self) -> dict[str, Any]:
        if self.model is not None:
            return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return dict(self._pending) if self._pending is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        if self.model is None:
            self._pending = dict(state)
        else:
            self.model.load_state_dict(dict(state))
