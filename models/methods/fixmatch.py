"""FixMatch for segmentation, as in the UniMatch repository's ``fixmatch.py`` baseline.

One strong view, CutMix-ed with a second unlabeled batch whose pseudo-labels come from a no-grad,
eval-mode forward; weak-view pseudo-labels are detached::

    L_u   = sum(CE(s, y) * [conf >= tau] * [not ignored]) / #not ignored
    loss  = (CE(x, label) + L_u) / 2

Batch keys: :class:`~slumwatch.models.methods.augment.UnlabeledViews` mode ``"fixmatch"``
(``u_image_w``, ``u_image_s1``, ``u_cutmix_box1``, ``u_image_mix``, ``u_image_mix_s1``, ignore masks).
With ``use_cutmix=False`` the strong view is used as is (plain FixMatch; the mix keys are not needed).
Defaults (``docs/methods.md``): tau 0.95, unlabeled weight 1, divisor 2 (UniMatch repo).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from slumwatch.models.base import LOGITS, call_forward_dict
from slumwatch.models.methods import register_method
from slumwatch.models.methods.base import MethodStepBase, StepOutput
from slumwatch.models.methods.consistency import (
    eval_mode,
    ignore_mask_of,
    mask_ratio,
    masked_consistency_loss,
    paste,
    pseudo_labels,
    supervised_ce,
)
from slumwatch.models.methods.overrides import apply_overrides

DEFAULT_THRESHOLD = 0.95
LOSS_DIVISOR = 2.0


@dataclass(frozen=True)
class FixMatchConfig:
    """FixMatch hyper-parameters.

    Attributes:
        threshold: fixed confidence threshold tau.
        unsup_weight: weight of the unlabeled loss.
        divisor: ``(sup + unsup_weight * L_u) / divisor``.
        use_cutmix: CutMix the strong view with the second unlabeled batch (UniMatch repo baseline).
    """

    threshold: float = DEFAULT_THRESHOLD
    unsup_weight: float = 1.0
    divisor: float = LOSS_DIVISOR
    use_cutmix: bool = True


@register_method("fixmatch")
class FixMatchStep(MethodStepBase):
    """The FixMatch training step (see the module docstring)."""

    name = "fixmatch"
    needs_unlabeled = True

    def __init__(self, *, config: FixMatchConfig | None = None, **overrides: Any) -> None:
        self.config = apply_overrides(config or FixMatchConfig(), overrides)

    def training_step(
        self, model: nn.Module, batch: Mapping[str, Tensor], *, iteration: int, total_iters: int
    ) -> StepOutput:
        """Loss for one labeled + unlabeled batch."""
        cfg = self.config
        image, label = batch["image"], batch["label"].long()
        weak, strong = batch["u_image_w"], batch["u_image_s1"]
        ignore = ignore_mask_of(batch, "u_ignore_mask", weak)

        mix_target = None
        box = None
        if cfg.use_cutmix:
            mix_weak = batch["u_image_mix"]
            box = batch["u_cutmix_box1"].bool()
            with eval_mode(model):
                logits_mix = call_forward_dict(model, mix_weak)[LOGITS]
            mix_target = pseudo_labels(logits_mix, ignore_mask_of(batch, "u_ignore_mask_mix", mix_weak))
            strong = paste(strong, batch.get("u_image_mix_s1", mix_weak), box)

        n_l, n_u = image.shape[0], weak.shape[0]
        logits_x, logits_w = model(torch.cat((image, weak))).split([n_l, n_u])
        logits_s = model(strong)

        target_w = pseudo_labels(logits_w, ignore)
        target = target_w if mix_target is None or box is None else target_w.mixed(mix_target, box)
        loss_x = supervised_ce(logits_x, label)
        loss_u = masked_consistency_loss(logits_s, target, target.conf >= cfg.threshold)
        loss = (loss_x + cfg.unsup_weight * loss_u) / cfg.divisor
        logs = {
            "loss": float(loss.detach()),
            "loss_x": float(loss_x.detach()),
            "loss_s": float(loss_u.detach()),
            "mask_ratio": mask_ratio(target_w.conf >= cfg.threshold, target_w.valid),
        }
        return StepOutput(loss=loss, logs=logs)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None
