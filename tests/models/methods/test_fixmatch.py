"""FixMatch step: fixed threshold, CutMix source without gradient, loss formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slumwatch.models.methods import get_method
from slumwatch.models.methods.fixmatch import FixMatchConfig, FixMatchStep

THRESHOLD = 0.7


def test_registered_defaults() -> None:
    step = get_method("fixmatch")
    assert isinstance(step, FixMatchStep) and step.needs_unlabeled
    assert step.config == FixMatchConfig(threshold=0.95, unsup_weight=1.0, divisor=2.0, use_cutmix=True)


@pytest.mark.parametrize("use_cutmix", [True, False])
def test_loss_formula(model_factory, batch_factory, use_cutmix: bool) -> None:
    model, batch = model_factory(), batch_factory()
    with torch.no_grad():
        conf_w, y_w = model(batch["u_image_w"]).softmax(dim=1).max(dim=1)
        valid = batch["u_ignore_mask"] != 255
        strong = batch["u_image_s1"]
        if use_cutmix:
            box = batch["u_cutmix_box1"]
            conf_m, y_m = model(batch["u_image_mix"]).softmax(dim=1).max(dim=1)
            strong = torch.where(box[:, None], batch["u_image_mix_s1"], strong)
            conf_w, y_w = torch.where(box, conf_m, conf_w), torch.where(box, y_m, y_w)
            valid = torch.where(box, batch["u_ignore_mask_mix"] != 255, valid)
        ce = F.cross_entropy(model(strong), y_w, reduction="none")
        unsup = (ce * ((conf_w >= THRESHOLD) & valid)).sum() / valid.sum()
        sup = F.cross_entropy(model(batch["image"]), batch["label"], ignore_index=255)
        expected = (sup + unsup) / 2
    out = FixMatchStep(threshold=THRESHOLD, use_cutmix=use_cutmix).training_step(
        model, batch, iteration=0, total_iters=1
    )
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert unsup > 0


def test_gradients_skip_weak_view(model_factory, batch_factory) -> None:
    model, batch = model_factory(), batch_factory()
    out = FixMatchStep(threshold=THRESHOLD).training_step(model, batch, iteration=0, total_iters=1)
    out.loss.backward()
    mix = [r for r in model.records if not r["training"]]
    assert len(mix) == 1 and not mix[0]["out"]["logits"].requires_grad
    n_l = batch["image"].shape[0]
    joint = next(
        r for r in model.records if r["training"] and r["batch"] == n_l + batch["u_image_w"].shape[0]
    )
    assert torch.count_nonzero(joint["out"]["logits"].grad[n_l:]) == 0
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
