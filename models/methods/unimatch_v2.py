"""UniMatch V2 (Yang et al., TPAMI 2025): EMA teacher, two CutMix-ed strong views with complementary
channel dropout, no separate FP stream.

Per iteration (batch keys from :class:`~slumwatch.models.methods.augment.UnlabeledViews`, mode
``"unimatch_v2"``; extra keys are ignored)::

    y_w     = teacher(u_image_w)                     # EMA teacher, eval, no grad -> pseudo-labels
    s_k     = paste(u_image_s_k, flip_batch(u_image_s_k), u_cutmix_box_k)   (V2 mixes within the batch)
    y_k     = y_w outside box_k, flip_batch(y_w) inside
    s1, s2  = student(cat(s_1, s_2)) with complementary channel dropout on the backbone features
    loss    = (CE(student(image), label) + (L_u(s1) + L_u(s2)) / 2) / 2

and after the optimiser step the teacher moves towards the student with decay
``min(1 - 1/(it+1), 0.996)`` (:mod:`slumwatch.models.methods.ema`). The teacher lives on the step object
(its weights are in :meth:`UniMatchV2Step.state_dict`), never in the optimiser.

Defaults (``docs/methods.md``): tau 0.95, max decay 0.996, half the pairs left unperturbed (V2 code).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from slumwatch.models.base import LOGITS, PROJ, call_forward_dict
from slumwatch.models.methods import register_method
from slumwatch.models.methods.base import MethodStepBase, StepOutput
from slumwatch.models.methods.comp_drop import KEEP_FRACTION, complementary_dropout
from slumwatch.models.methods.consistency import (
    PseudoLabels,
    ignore_mask_of,
    mask_ratio,
    masked_consistency_loss,
    paste,
    pseudo_labels,
    supervised_ce,
)
from slumwatch.models.methods.ema import DEFAULT_MAX_DECAY, EMATeacher
from slumwatch.models.methods.overrides import apply_overrides

DEFAULT_THRESHOLD = 0.95
LOSS_DIVISOR = 2.0


@dataclass(frozen=True)
class UniMatchV2Config:
    """UniMatch V2 hyper-parameters.

    Attributes:
        threshold: fixed confidence threshold tau.
        ema_max_decay: cap of the EMA teacher decay.
        comp_drop: complementary channel dropout between the two strong views.
        keep_fraction: fraction of image pairs left unperturbed by the dropout.
        divisor: ``(sup + (L_s1 + L_s2) / 2) / divisor``.
    """

    threshold: float = DEFAULT_THRESHOLD
    ema_max_decay: float = DEFAULT_MAX_DECAY
    comp_drop: bool = True
    keep_fraction: float = KEEP_FRACTION
    divisor: float = LOSS_DIVISOR


@register_method("unimatch-v2")
class UniMatchV2Step(MethodStepBase):
    """The UniMatch V2 training step (see the module docstring)."""

    name = "unimatch-v2"
    needs_unlabeled = True
    uses_projection = False

    def __init__(self, *, config: UniMatchV2Config | None = None, **overrides: Any) -> None:
        self.config = apply_overrides(config or UniMatchV2Config(), overrides)
        self.teacher = EMATeacher(max_decay=self.config.ema_max_decay)

    # --- hooks for the SLUM-i variant -----------------------------------------------------------------
    def _gate(self, weak: PseudoLabels) -> Tensor:
        return weak.conf >= self.config.threshold

    def _weight(self, weak: PseudoLabels, gate: Tensor, feat: Tensor | None) -> Tensor | None:
        return None

    def _extra_logs(self) -> dict[str, float]:
        return {}

    def _check_num_classes(self, num_classes: int) -> None:
        return None

    # --- the step --------------------------------------------------------------------------------------
    def training_step(
        self, model: nn.Module, batch: Mapping[str, Tensor], *, iteration: int, total_iters: int
    ) -> StepOutput:
        """Loss for one labeled + unlabeled batch; the teacher is built from ``model`` on first use."""
        cfg = self.config
        image, label = batch["image"], batch["label"].long()
        weak = batch["u_image_w"]
        ignore = ignore_mask_of(batch, "u_ignore_mask", weak)
        boxes = (batch["u_cutmix_box1"].bool(), batch["u_cutmix_box2"].bool())

        teacher = self.teacher.ensure(model)
        with torch.no_grad():
            out_t = call_forward_dict(teacher, weak, proj=self.uses_projection)
        self._check_num_classes(out_t[LOGITS].shape[1])
        target_w = pseudo_labels(out_t[LOGITS], ignore)
        feat_w = out_t[PROJ].detach() if self.uses_projection else None
        gate_w = self._gate(target_w)
        weight_w = self._weight(target_w, gate_w, feat_w)

        strong = [
            paste(batch[key], batch[key].flip(0), box)
            for key, box in zip(("u_image_s1", "u_image_s2"), boxes, strict=True)
        ]
        logits_x = model(image)
        if cfg.comp_drop:
            with complementary_dropout(model, keep_fraction=cfg.keep_fraction):
                logits_s = model(torch.cat(strong))
        else:
            logits_s = model(torch.cat(strong))
        logits_s1, logits_s2 = logits_s.chunk(2)

        target_flip, gate_flip = target_w.flipped(), gate_w.flip(0)
        losses = []
        for logits, box in zip((logits_s1, logits_s2), boxes, strict=True):
            target = target_w.mixed(target_flip, box)
            gate = torch.where(box, gate_flip, gate_w)
            weight = None if weight_w is None else torch.where(box, weight_w.flip(0), weight_w)
            losses.append(masked_consistency_loss(logits, target, gate, weight))
        loss_x = supervised_ce(logits_x, label)
        loss_s = (losses[0] + losses[1]) / 2.0
        loss = (loss_x + loss_s) / cfg.divisor
        logs = {
            "loss": float(loss.detach()),
            "loss_x": float(loss_x.detach()),
            "loss_s": float(loss_s.detach()),
            "mask_ratio": mask_ratio(gate_w, target_w.valid),
        }
        logs.update(self._extra_logs())
        return StepOutput(loss=loss, logs=logs)

    def after_optimizer_step(self, model: nn.Module, *, iteration: int) -> None:
        """EMA update of the teacher with decay ``min(1 - 1/(iteration+1), ema_max_decay)``."""
        self.teacher.update(model, iteration=iteration)

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.teacher.load_state_dict(state.get("teacher", {}))
