"""Supervised baseline: cross-entropy on the labeled batch (ignore index 255)."""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor

from slumwatch.models.base import SegmentationModel
from slumwatch.models.methods import register_method
from slumwatch.models.methods.base import MethodStepBase, StepOutput

IGNORE_INDEX = 255


@register_method("supervised")
class SupervisedStep(MethodStepBase):
    """``loss = CE(model(image), label)``, pixels labelled 255 ignored; batch keys ``image``, ``label``."""

    name = "supervised"
    needs_unlabeled = False

    def __init__(self, *, ignore_index: int = IGNORE_INDEX) -> None:
        self.ignore_index = ignore_index

    def training_step(
        self, model: SegmentationModel, batch: Mapping[str, Tensor], *, iteration: int, total_iters: int
    ) -> StepOutput:
        """CE of logits (B, K, H, W) against ``label`` (B, H, W)."""
        logits = model(batch["image"])
        loss = F.cross_entropy(logits.float(), batch["label"], ignore_index=self.ignore_index)
        return StepOutput(loss=loss, logs={"loss_sup": float(loss.detach())})
