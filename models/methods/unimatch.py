"""UniMatch (Yang et al., CVPR 2023): weak-to-strong consistency with two CutMix-ed strong views and a
feature-perturbation (FP) stream.

Per iteration (batch keys from :class:`~slumwatch.models.methods.augment.UnlabeledViews`, mode
``"unimatch"``)::

    mix     = model(u_image_mix)                     # no grad, eval mode: CutMix source pseudo-labels
    s_k     = paste(u_image_s_k, u_image_mix_s_k, u_cutmix_box_k)       k = 1, 2
    x, w    = model(cat(image, u_image_w), fp=True)  # logits + logits_fp
    y_w     = argmax / max-softmax of w.detach()     # pseudo-labels, no gradient
    y_k     = y_w outside box_k, y_mix inside
    L_u(s)  = sum(CE(s, y) * [conf >= tau] * [not ignored]) / #not ignored
    loss    = (CE(x, label) + 0.25 L_u(s_1) + 0.25 L_u(s_2) + 0.5 L_u(fp)) / 2

Defaults from LiheYoung/UniMatch (``docs/methods.md``): tau 0.95, weights 0.25 / 0.25 / 0.5, divisor 2.

The gate and the per-pixel weights are hooks (:meth:`UniMatchStep._gates`, :meth:`UniMatchStep._weights`)
so SLUM-i can replace the fixed threshold with CAAT and add prototype reliability weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from slumwatch.models.base import LOGITS, LOGITS_FP, PROJ, call_forward_dict
from slumwatch.models.methods import register_method
from slumwatch.models.methods.base import MethodStepBase, StepOutput
from slumwatch.models.methods.consistency import (
    PseudoLabels,
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
STRONG_WEIGHT = 0.25
FP_WEIGHT = 0.5
LOSS_DIVISOR = 2.0


@dataclass(frozen=True)
class UniMatchConfig:
    """UniMatch hyper-parameters.

    Attributes:
        threshold: confidence threshold tau for pseudo-labels.
        strong_weight: weight of each of the two strong-view losses.
        fp_weight: weight of the feature-perturbation loss.
        sup_weight: weight of the supervised loss.
        divisor: the weighted sum is divided by this.
    """

    threshold: float = DEFAULT_THRESHOLD
    strong_weight: float = STRONG_WEIGHT
    fp_weight: float = FP_WEIGHT
    sup_weight: float = 1.0
    divisor: float = LOSS_DIVISOR


@dataclass(frozen=True)
class _Views:
    """Unpacked unimatch batch (all on the model's device)."""

    image: Tensor  # (B_l, C, H, W)
    label: Tensor  # (B_l, H, W)
    weak: Tensor  # (B_u, C, H, W)
    strong: tuple[Tensor, Tensor]  # 2 x (B_u, C, H, W), before CutMix
    boxes: tuple[Tensor, Tensor]  # 2 x (B_u, H, W) bool
    ignore: Tensor  # (B_u, H, W) 0 / 255
    mix_weak: Tensor  # (B_u, C, H, W)
    mix_strong: tuple[Tensor, Tensor]
    mix_ignore: Tensor


def _unpack(batch: Mapping[str, Tensor]) -> _Views:
    weak = batch["u_image_w"]
    mix_weak = batch["u_image_mix"]
    ignore = ignore_mask_of(batch, "u_ignore_mask", weak)
    return _Views(
        image=batch["image"],
        label=batch["label"].long(),
        weak=weak,
        strong=(batch["u_image_s1"], batch["u_image_s2"]),
        boxes=(batch["u_cutmix_box1"].bool(), batch["u_cutmix_box2"].bool()),
        ignore=ignore,
        mix_weak=mix_weak,
        mix_strong=(batch.get("u_image_mix_s1", mix_weak), batch.get("u_image_mix_s2", mix_weak)),
        mix_ignore=ignore_mask_of(batch, "u_ignore_mask_mix", mix_weak),
    )


@register_method("unimatch")
class UniMatchStep(MethodStepBase):
    """The UniMatch training step (see the module docstring).

    Args:
        config: hyper-parameters; keyword overrides (e.g. ``threshold=0.9``) replace its fields.
    """

    name = "unimatch"
    needs_unlabeled = True
    uses_projection = False

    def __init__(self, *, config: UniMatchConfig | None = None, **overrides: Any) -> None:
        self.config = apply_overrides(config or UniMatchConfig(), overrides)

    # --- hooks for SLUM-i ----------------------------------------------------------------------------
    def _gates(self, weak: PseudoLabels, mix: PseudoLabels) -> tuple[Tensor, Tensor]:
        """(B, H, W) bool confidence gates of the weak-view and CutMix-source pseudo-labels."""
        tau = self.config.threshold
        return weak.conf >= tau, mix.conf >= tau

    def _weights(
        self,
        weak: PseudoLabels,
        mix: PseudoLabels,
        gates: tuple[Tensor, Tensor],
        feats: tuple[Tensor | None, Tensor | None],
    ) -> tuple[Tensor | None, Tensor | None]:
        """Per-pixel weights of the strong-view losses (None = 1); ``feats`` are the projections."""
        return None, None

    def _check_num_classes(self, num_classes: int) -> None:
        """Hook: SLUM-i checks that its per-class state matches the network's K."""
        return None

    # --- the step --------------------------------------------------------------------------------------
    def training_step(
        self, model: nn.Module, batch: Mapping[str, Tensor], *, iteration: int, total_iters: int
    ) -> StepOutput:
        """Loss for one labeled + unlabeled batch; see the module docstring for the formula."""
        cfg = self.config
        v = _unpack(batch)
        proj = self.uses_projection

        with eval_mode(model):
            out_mix = call_forward_dict(model, v.mix_weak, proj=proj)
        target_mix = pseudo_labels(out_mix[LOGITS], v.mix_ignore)
        feat_mix = out_mix[PROJ].detach() if proj else None

        strong = [paste(s, m, box) for s, m, box in zip(v.strong, v.mix_strong, v.boxes, strict=True)]

        n_l, n_u = v.image.shape[0], v.weak.shape[0]
        out = call_forward_dict(model, torch.cat((v.image, v.weak)), fp=True, proj=proj)
        logits_x, logits_w = out[LOGITS].split([n_l, n_u])
        logits_fp = out[LOGITS_FP][n_l:]
        feat_w = out[PROJ][n_l:].detach() if proj else None
        logits_s1, logits_s2 = model(torch.cat(strong)).chunk(2)

        self._check_num_classes(logits_w.shape[1])
        target_w = pseudo_labels(logits_w, v.ignore)
        gate_w, gate_mix = self._gates(target_w, target_mix)
        weight_w, weight_mix = self._weights(target_w, target_mix, (gate_w, gate_mix), (feat_w, feat_mix))

        loss_x = supervised_ce(logits_x, v.label)
        losses_s = []
        for logits_s, box in zip((logits_s1, logits_s2), v.boxes, strict=True):
            target = target_w.mixed(target_mix, box)
            gate = torch.where(box, gate_mix, gate_w)
            weight = None
            if weight_w is not None and weight_mix is not None:
                weight = torch.where(box, weight_mix, weight_w)
            losses_s.append(masked_consistency_loss(logits_s, target, gate, weight))
        loss_fp = masked_consistency_loss(logits_fp, target_w, gate_w)

        loss = (
            cfg.sup_weight * loss_x
            + cfg.strong_weight * (losses_s[0] + losses_s[1])
            + cfg.fp_weight * loss_fp
        ) / cfg.divisor
        logs = {
            "loss": float(loss.detach()),
            "loss_x": float(loss_x.detach()),
            "loss_s": float((losses_s[0] + losses_s[1]).detach()) / 2.0,
            "loss_fp": float(loss_fp.detach()),
            "mask_ratio": mask_ratio(gate_w, target_w.valid),
        }
        logs.update(self._extra_logs())
        return StepOutput(loss=loss, logs=logs)

    def _extra_logs(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None
