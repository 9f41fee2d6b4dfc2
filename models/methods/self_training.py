"""Self-training (ST / ST++, Yang et al. CVPR 2022; SegSlum): the re-training step and the pure functions
of the pipeline. The multi-stage orchestration lives in :mod:`slumwatch.actors.self_training`.

Re-training step (registered as ``st`` and ``st++``; the two stages differ only in which pseudo-labelled
images they are given). Batch keys: labeled ``image`` (B, C, H, W), ``label`` (B, H, W); pseudo-labelled
(from :class:`~slumwatch.models.methods.augment.UnlabeledViews` mode ``"segslum"`` over a dataset whose
``label`` is the pseudo-label) ``u_image_s`` strong view (colour jitter, grayscale, blur, cutout),
``u_label`` (255 in the cutout box), ``u_image_w`` weak view, optional ``u_ignore_mask``::

    loss = CE(model(cat(image, u_image_s)), cat(label, u_label))        (ignore 255, one mean)
         + gram_weight * mean((gram(u_image_w).detach() - gram(u_image_s)) ** 2)     if use_gram

One labeled and one pseudo-labelled batch per iteration replaces ST++'s single loader over "labeled ids
repeated ceil(U/L) times + unlabeled ids": the same 1:1 mix and the same samples per epoch. The GRAM term
(SegSlum) is computed on the pseudo-labelled stream, the only one with distinct weak/strong views; it
needs a network with the GRAM branch (``deeplabv3plus_aux_*``). SegSlum = ``st++`` with ``use_gram=True``.

Pure functions: :func:`stability_scores` (ST++ image reliability), :func:`select_reliable` and
:func:`pseudo_label_tta` (multi-scale + flip test-time augmentation, softmax summed).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slumwatch.models.base import GRAM, LOGITS, call_forward_dict
from slumwatch.models.methods import register_method
from slumwatch.models.methods.base import MethodStepBase, StepOutput
from slumwatch.models.methods.consistency import IGNORE_INDEX, eval_mode, supervised_ce
from slumwatch.models.methods.gram import GRAM_WEIGHT, gram_consistency_loss
from slumwatch.models.methods.overrides import apply_overrides

DEFAULT_TTA_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)
DEFAULT_RELIABLE_FRACTION = 0.5

IdT = TypeVar("IdT", bound=Hashable)


@dataclass(frozen=True)
class SelfTrainingConfig:
    """Re-training hyper-parameters.

    Attributes:
        use_gram: add SegSlum's GRAM texture-consistency loss (needs a ``*_aux`` network).
        gram_weight: its weight (1e-3, SegSlum).
    """

    use_gram: bool = False
    gram_weight: float = GRAM_WEIGHT


@register_method("st")
class SelfTrainingStep(MethodStepBase):
    """Cross-entropy on labeled + strongly augmented pseudo-labelled images (+ optional GRAM loss)."""

    name = "st"
    needs_unlabeled = True

    def __init__(self, *, config: SelfTrainingConfig | None = None, **overrides: Any) -> None:
        self.config = apply_overrides(config or SelfTrainingConfig(), overrides)

    def training_step(
        self, model: nn.Module, batch: Mapping[str, Tensor], *, iteration: int, total_iters: int
    ) -> StepOutput:
        """Loss for one labeled + pseudo-labelled batch (see the module docstring)."""
        cfg = self.config
        image, label = batch["image"], batch["label"].long()
        weak = batch["u_image_w"]
        strong = batch.get("u_image_s", weak)
        pseudo = batch["u_label"].long()
        ignore = batch.get("u_ignore_mask")
        if ignore is not None:
            pseudo = pseudo.masked_fill(ignore == IGNORE_INDEX, IGNORE_INDEX)

        n_l = image.shape[0]
        out = call_forward_dict(model, torch.cat((image, strong)), gram=cfg.use_gram)
        loss_ce = supervised_ce(out[LOGITS], torch.cat((label, pseudo)))
        logs: dict[str, float] = {"loss_ce": float(loss_ce.detach())}
        loss = loss_ce
        if cfg.use_gram:
            with torch.no_grad():
                gram_weak = call_forward_dict(model, weak, gram=True)[GRAM]
            loss_gram = gram_consistency_loss(out[GRAM][n_l:], gram_weak)
            loss = loss + cfg.gram_weight * loss_gram
            logs["loss_gram"] = float(loss_gram.detach())
        logs["loss"] = float(loss.detach())
        return StepOutput(loss=loss, logs=logs)


@register_method("st++")
class STPlusPlusStep(SelfTrainingStep):
    """The same re-training step, named ``st++`` (used by the ST++ stages 4 and 6)."""

    name = "st++"


def stability_scores(
    preds_by_checkpoint: Sequence[Tensor],
    final: Tensor,
    *,
    num_classes: int | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """ST++ reliability of each image: mean over earlier checkpoints of mIoU(checkpoint, final).

    Args:
        preds_by_checkpoint: argmax maps (N, H, W) of the earlier checkpoints (e.g. epochs E/3, 2E/3).
        final: argmax map (N, H, W) of the final checkpoint, treated as the reference.
        num_classes: K (default: 1 + the largest class id present).
        valid: optional (N, H, W) bool; only these pixels count (nodata, clouds and tile padding have
            no say in an image's stability).

    Returns:
        (N,) float64 scores in [0, 1], not rounded. Per image, mIoU is the mean IoU over the classes
        present in either map (classes with an empty union are skipped, as the nan-mean of ST++); an
        image without any valid pixel scores NaN (and :func:`select_reliable` ranks it last).
    """
    if len(preds_by_checkpoint) == 0:
        raise ValueError("stability needs at least one earlier checkpoint")
    n = final.shape[0]
    k = num_classes
    if k is None:
        k = int(max(int(final.max()), *(int(p.max()) for p in preds_by_checkpoint))) + 1
    ref = final.reshape(n, -1).long().cpu()
    if valid is not None and valid.shape != final.shape:
        raise ValueError(f"valid shape {tuple(valid.shape)} != final {tuple(final.shape)}")
    weight = (
        torch.ones(ref.shape, dtype=torch.float64)
        if valid is None
        else valid.reshape(n, -1).cpu().to(torch.float64)
    )
    total = torch.zeros(n, dtype=torch.float64)
    for pred in preds_by_checkpoint:
        if pred.shape != final.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != final {tuple(final.shape)}")
        idx = ref * k + pred.reshape(n, -1).long().cpu()
        cm = torch.zeros(n, k * k, dtype=torch.float64).scatter_add_(1, idx, weight)
        cm = cm.reshape(n, k, k)
        tp = cm.diagonal(dim1=1, dim2=2)
        union = cm.sum(dim=1) + cm.sum(dim=2) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        total += iou.nanmean(dim=1)
    return total / len(preds_by_checkpoint)


def select_reliable(
    scores: Tensor | Sequence[float], ids: Sequence[IdT], *, fraction: float = DEFAULT_RELIABLE_FRACTION
) -> tuple[list[IdT], list[IdT]]:
    """Split ``ids`` into (reliable, unreliable): the top ``floor(fraction * N)`` by score are reliable.

    Ties keep the input order (stable sort); NaN scores rank last.
    """
    values = [float(s) for s in (scores.tolist() if isinstance(scores, Tensor) else scores)]
    if len(values) != len(ids):
        raise ValueError(f"{len(values)} scores for {len(ids)} ids")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    order = sorted(range(len(ids)), key=lambda i: math.inf if math.isnan(values[i]) else -values[i])
    n_reliable = math.floor(fraction * len(ids))
    return [ids[i] for i in order[:n_reliable]], [ids[i] for i in order[n_reliable:]]


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def pseudo_label_tta(
    model: nn.Module,
    images: Tensor,
    *,
    scales: Sequence[float] = DEFAULT_TTA_SCALES,
    flip: bool = True,
) -> tuple[Tensor, Tensor]:
    """Pseudo-labels with multi-scale (and horizontal-flip) test-time augmentation.

    Each view is resized (bilinear), predicted in eval mode without gradient, its logits resized back to
    (H, W) and soft-maxed; the softmax maps of all ``len(scales) * (1 + flip)`` views are summed.

    Args:
        model: segmentation network (any wrapper); its train/eval mode is restored afterwards.
        images: (B, C, H, W) float.
        scales: resize factors.
        flip: also predict the horizontally flipped views.

    Returns:
        ``labels`` (B, H, W) int64 argmax of the summed softmax, and ``confidence`` (B, H, W) float32:
        the summed softmax of that class divided by the number of views (in [0, 1]).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    device = _model_device(model)
    x = images.to(device).float()
    height, width = x.shape[-2:]
    total: Tensor | None = None
    views = 0
    with eval_mode(model):
        for scale in scales:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            scaled = (
                x
                if size == (height, width)
                else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            )
            for flipped in (False, True) if flip else (False,):
                view = scaled.flip(-1) if flipped else scaled
                logits = call_forward_dict(model, view)[LOGITS].float()
                if flipped:
                    logits = logits.flip(-1)
                if tuple(logits.shape[-2:]) != (height, width):
                    logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
                probs = logits.softmax(dim=1)
                total = probs if total is None else total + probs
                views += 1
    if total is None:
        raise ValueError("scales must not be empty")
    confidence, labels = (total / views).max(dim=1)
    return labels.to(images.device), confidence.to(images.device)


__all__ = [
    "DEFAULT_RELIABLE_FRACTION",
    "DEFAULT_TTA_SCALES",
    "STPlusPlusStep",
    "SelfTrainingConfig",
    "SelfTrainingStep",
    "pseudo_label_tta",
    "select_reliable",
    "stability_scores",
]
