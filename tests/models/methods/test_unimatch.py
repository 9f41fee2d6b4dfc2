"""UniMatch step: the loss equals the formula computed by hand; gradients skip the pseudo-labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from slumwatch.models.methods import get_method
from slumwatch.models.methods.unimatch import UniMatchConfig, UniMatchStep

THRESHOLD = 0.7


def _ce(logits: Tensor, target: Tensor) -> Tensor:
    return -logits.log_softmax(dim=1).gather(1, target.unsqueeze(1)).squeeze(1)


def _expected_loss(model, batch: dict[str, Tensor], tau: float) -> dict[str, float]:
    """UniMatch's loss, written out independently of the step's helpers."""
    with torch.no_grad():
        mix_probs = model.forward_dict(batch["u_image_mix"])["logits"].softmax(dim=1)
        conf_mix, y_mix = mix_probs.max(dim=1)
        weak = model.forward_dict(batch["u_image_w"], fp=True)
        conf_w, y_w = weak["logits"].softmax(dim=1).max(dim=1)
        logits_fp = weak["logits_fp"]
        valid_w = batch["u_ignore_mask"] != 255
        valid_mix = batch["u_ignore_mask_mix"] != 255
        logits_x = model(batch["image"])
        label = batch["label"]
        sup = F.cross_entropy(logits_x, label, ignore_index=255)
        strong_losses = []
        for k in (1, 2):
            box = batch[f"u_cutmix_box{k}"]
            image = torch.where(box[:, None], batch[f"u_image_mix_s{k}"], batch[f"u_image_s{k}"])
            target = torch.where(box, y_mix, y_w)
            conf = torch.where(box, conf_mix, conf_w)
            valid = torch.where(box, valid_mix, valid_w)
            gate = (conf >= tau) & valid
            strong_losses.append((_ce(model(image), target) * gate).sum() / valid.sum())
        fp = (_ce(logits_fp, y_w) * ((conf_w >= tau) & valid_w)).sum() / valid_w.sum()
        total = (sup + 0.25 * strong_losses[0] + 0.25 * strong_losses[1] + 0.5 * fp) / 2.0
        ratio = ((conf_w >= tau) & valid_w).sum() / valid_w.sum()
    return {
        "loss": total.item(),
        "loss_x": sup.item(),
        "loss_fp": fp.item(),
        "ratio": ratio.item(),
        "loss_s": (strong_losses[0] + strong_losses[1]).item() / 2,
    }


def test_registered_with_documented_defaults() -> None:
    step = get_method("unimatch")
    assert isinstance(step, UniMatchStep) and step.needs_unlabeled
    assert step.config == UniMatchConfig(threshold=0.95, strong_weight=0.25, fp_weight=0.5, divisor=2.0)


def test_loss_matches_hand_formula(model_factory, batch_factory) -> None:
    model, batch = model_factory(), batch_factory()
    expected = _expected_loss(model, batch, THRESHOLD)
    assert 0.05 < expected["ratio"] < 0.95  # the gate really selects
    out = UniMatchStep(threshold=THRESHOLD).training_step(model, batch, iteration=0, total_iters=10)
    assert torch.isfinite(out.loss)
    assert out.loss.item() == pytest_approx(expected["loss"])
    assert out.logs["loss_x"] == pytest_approx(expected["loss_x"])
    assert out.logs["loss_fp"] == pytest_approx(expected["loss_fp"])
    assert out.logs["loss_s"] == pytest_approx(expected["loss_s"])
    assert out.logs["mask_ratio"] == pytest_approx(expected["ratio"])


def test_gradients_reach_network_but_not_pseudo_labels(model_factory, batch_factory) -> None:
    model, batch = model_factory(), batch_factory()
    out = UniMatchStep(threshold=THRESHOLD).training_step(model, batch, iteration=0, total_iters=10)
    out.loss.backward()
    mix = [r for r in model.records if not r["training"]]
    assert len(mix) == 1 and not mix[0]["out"]["logits"].requires_grad  # CutMix source: no grad, eval
    main = next(r for r in model.records if r["fp"])
    n_l = batch["image"].shape[0]
    grad = main["out"]["logits"].grad
    assert grad is not None
    assert grad[:n_l].abs().sum() > 0  # supervised part
    assert torch.count_nonzero(grad[n_l:]) == 0  # weak view feeds only the (detached) pseudo-labels
    assert main["out"]["logits_fp"].grad.abs().sum() > 0
    for param in (model.backbone.weight, model.head.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    assert model.proj_head.weight.grad is None
    assert model.training  # mode restored after the eval-mode mix forward


def test_all_ignored_unlabeled_pixels_give_finite_loss(model_factory, batch_factory) -> None:
    batch = batch_factory()
    batch["u_ignore_mask"] = torch.full_like(batch["u_ignore_mask"], 255)
    batch["u_ignore_mask_mix"] = torch.full_like(batch["u_ignore_mask_mix"], 255)
    out = UniMatchStep().training_step(model_factory(), batch, iteration=0, total_iters=1)
    assert torch.isfinite(out.loss)


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, rel=1e-5, abs=1e-7)
