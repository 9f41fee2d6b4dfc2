"""The step-object protocol: what one training iteration of a method does.

The engine owns the loop (optimizer, AMP, accumulation, LR, checkpoints); a step object only turns one
batch into a loss. Per iteration the engine builds ONE dict: the labeled batch (``image`` (B, C, H, W)
float32, ``label`` (B, H, W) int64, 255 = ignore, plus any other collated keys) and, when
``needs_unlabeled``, the unlabeled batch with every key prefixed ``u_`` (``u_image`` or ``u_image_w``,
``u_image_s1``, ...). All tensors are already on the training device.

``model`` passed to :meth:`MethodStep.training_step` is a :class:`SegmentationModel` in single-process
runs; inside a DDP worker it may be the DDP wrapper: call ``call_forward_dict(model, x, fp=True)`` (from
:mod:`slumwatch.models.base`) rather than ``model.forward_dict`` so both work and gradients stay
synchronised, and ``unwrap_model(model)`` for parameters/copies (e.g. an EMA teacher).

``state_dict`` must hold only tensors, numbers, strings, ``None`` and lists/tuples/dicts of those
(checkpoints are read with ``weights_only=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from torch import Tensor

from slumwatch.models.base import SegmentationModel

UNLABELED_PREFIX = "u_"


@dataclass(frozen=True)
class StepOutput:
    """Result of one training step."""

    loss: Tensor  # scalar, to backprop
    logs: Mapping[str, float]  # detached scalars for logging


@runtime_checkable
class MethodStep(Protocol):
    """What the engine needs from a training method."""

    name: str
    needs_unlabeled: bool

    def training_step(
        self, model: SegmentationModel, batch: Mapping[str, Tensor], *, iteration: int, total_iters: int
    ) -> StepOutput:
        """Loss for one merged batch (see the module docstring for the keys)."""
        ...

    def after_optimizer_step(self, model: SegmentationModel, *, iteration: int) -> None:
        """Hook after each optimizer update (e.g. EMA teacher update)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (thresholds, prototype banks, teacher weights...)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (on resume)."""
        ...


class MethodStepBase:
    """Convenience base with no-op hooks and empty state; subclasses implement ``training_step``."""

    name: ClassVar[str] = "base"
    needs_unlabeled: ClassVar[bool] = False

    def training_step(
        self, model: SegmentationModel, batch: Mapping[str, Tensor], *, iteration: int, total_iters: int
    ) -> StepOutput:
        """Subclasses compute the loss here."""
        raise NotImplementedError

    def after_optimizer_step(self, model: SegmentationModel, *, iteration: int) -> None:
        """No-op."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """No state."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore."""
        return None


def merge_batches(labeled: Mapping[str, Any], unlabeled: Mapping[str, Any] | None) -> dict[str, Any]:
    """One dict per iteration: labeled keys as they are, unlabeled keys prefixed with ``u_``."""
    merged = dict(labeled)
    if unlabeled is not None:
        merged.update({f"{UNLABELED_PREFIX}{key}": value for key, value in unlabeled.items()})
    return merged


__all__ = ["UNLABELED_PREFIX", "MethodStep", "MethodStepBase", "StepOutput", "merge_batches"]
