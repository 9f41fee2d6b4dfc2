"""SLUM-i step: CAAT + Prototype Bank on UniMatch, each switchable; weights on strong views only."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from slumwatch.models.methods import get_method
from slumwatch.models.methods.caat import CAATConfig
from slumwatch.models.methods.prototype_bank import PrototypeBankConfig
from slumwatch.models.methods.slum_i import SlumIConfig, SlumIStep
from slumwatch.models.methods.unimatch import UniMatchConfig, UniMatchStep

THRESHOLD = 0.7
BANK = PrototypeBankConfig(dim=8, queue_size=16, samples_per_class=4, w_min=0.1, scale=2.0)


def _ce(logits: Tensor, target: Tensor) -> Tensor:
    return -logits.log_softmax(dim=1).gather(1, target.unsqueeze(1)).squeeze(1)


def _step(**kw: object) -> SlumIStep:
    base = {"unimatch": UniMatchConfig(threshold=THRESHOLD), "bank": BANK}
    base.update(kw)
    return SlumIStep(**base)  # type: ignore[arg-type]


def test_registered_defaults() -> None:
    step = get_method("slum-i")
    assert isinstance(step, SlumIStep) and step.needs_unlabeled
    cfg = step.slum_config
    assert cfg == SlumIConfig() and cfg.use_caat and cfg.use_prototypes
    assert cfg.caat.tau_low == 0.7 and cfg.caat.tau_high == 0.95 and cfg.caat.momentum == 0.999
    assert cfg.bank.queue_size == 256 and cfg.bank.samples_per_class == 64


def test_both_parts_off_is_unimatch(model_factory, batch_factory) -> None:
    batch = batch_factory()
    ours = _step(use_caat=False, use_prototypes=False).training_step(
        model_factory(), batch, iteration=0, total_iters=1
    )
    ref = UniMatchStep(threshold=THRESHOLD).training_step(model_factory(), batch, iteration=0, total_iters=1)
    assert torch.equal(ours.loss, ref.loss)


def test_caat_thresholds_follow_the_ema(model_factory, batch_factory) -> None:
    caat = CAATConfig(momentum=0.5, tau_low=0.5, tau_high=0.95, init=0.9)
    model, batch = model_factory(), batch_factory()
    with torch.no_grad():
        conf, label = model.forward_dict(batch["u_image_w"])["logits"].softmax(dim=1).max(dim=1)
    valid = batch["u_ignore_mask"] != 255
    expected = []
    for cls in range(2):
        sel = (label == cls) & valid
        expected.append(min(0.95, max(0.5, 0.5 * 0.9 + 0.5 * conf[sel].mean().item())))
    step = _step(caat=caat, use_prototypes=False)
    out = step.training_step(model, batch, iteration=0, total_iters=1)
    assert step.gating.caat.thresholds.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.logs["tau_0"] == pytest.approx(expected[0], rel=1e-6)
    # the FP gate uses the updated per-class thresholds
    tau_map = torch.tensor(expected)[label]
    ratio = (((conf >= tau_map) & valid).sum() / valid.sum()).item()
    assert out.logs["mask_ratio"] == pytest.approx(ratio)


def test_prototype_weights_apply_to_strong_views_only(model_factory, batch_factory) -> None:
    model, batch = model_factory(), batch_factory()
    step = _step(use_caat=False)
    gen = torch.Generator().manual_seed(0)
    for cls in range(2):
        step.gating.bank.push(cls, torch.randn(6, 8, generator=gen))
    bank_before = copy.deepcopy(step.gating.bank)
    count_before = step.gating.bank.count.clone()

    with torch.no_grad():
        mix = model.forward_dict(batch["u_image_mix"], proj=True)
        weak = model.forward_dict(batch["u_image_w"], proj=True)
        conf_mix, y_mix = mix["logits"].softmax(dim=1).max(dim=1)
        conf_w, y_w = weak["logits"].softmax(dim=1).max(dim=1)
        w_mix = bank_before.reliability(mix["proj"], y_mix)
        w_w = bank_before.reliability(weak["proj"], y_w)
        valid_w, valid_mix = batch["u_ignore_mask"] != 255, batch["u_ignore_mask_mix"] != 255
        losses = []
        for k in (1, 2):
            box = batch[f"u_cutmix_box{k}"]
            image = torch.where(box[:, None], batch[f"u_image_mix_s{k}"], batch[f"u_image_s{k}"])
            gate = (torch.where(box, conf_mix, conf_w) >= THRESHOLD) & torch.where(box, valid_mix, valid_w)
            weight = torch.where(box, w_mix, w_w)
            ce = _ce(model(image), torch.where(box, y_mix, y_w))
            losses.append((ce * gate * weight).sum() / torch.where(box, valid_mix, valid_w).sum())
    assert (w_w < 1).any() and (w_w >= 0.1).all()

    out = step.training_step(model, batch, iteration=0, total_iters=1)
    assert out.logs["loss_s"] == pytest.approx((losses[0] + losses[1]).item() / 2, rel=1e-5)
    ref = UniMatchStep(threshold=THRESHOLD).training_step(model_factory(), batch, iteration=0, total_iters=1)
    assert out.logs["loss_fp"] == pytest.approx(ref.logs["loss_fp"], rel=1e-6)  # FP loss not weighted
    assert out.logs["loss_s"] < ref.logs["loss_s"]
    # the bank grew by the gated weak-view pixels, at most samples_per_class per class
    gated = (conf_w >= THRESHOLD) & valid_w
    small = F.interpolate(gated[:, None].float(), size=weak["proj"].shape[-2:], mode="nearest")[:, 0].bool()
    small_y = F.interpolate(y_w[:, None].float(), size=weak["proj"].shape[-2:], mode="nearest")[:, 0].long()
    for cls in range(2):
        n = int((small & (small_y == cls)).sum())
        added = int(step.gating.bank.count[cls] - count_before[cls])
        assert added == min(n, BANK.samples_per_class, BANK.queue_size - int(count_before[cls]))


def test_gradients_skip_projection_and_pseudo_labels(model_factory, batch_factory) -> None:
    model, batch = model_factory(), batch_factory()
    out = _step(caat=CAATConfig(tau_low=0.5)).training_step(model, batch, iteration=0, total_iters=1)
    out.loss.backward()
    main = next(r for r in model.records if r["fp"])
    assert main["proj"]
    n_l = batch["image"].shape[0]
    assert torch.count_nonzero(main["out"]["logits"].grad[n_l:]) == 0
    assert model.proj_head.weight.grad is None  # features only feed the bank and weights (detached)
    assert model.head.weight.grad is not None and model.backbone.weight.grad is not None


def test_state_round_trip_reproduces_next_loss(model_factory, batch_factory) -> None:
    caat = CAATConfig(momentum=0.9, tau_low=0.5)
    model, step = model_factory(), _step(caat=caat)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for it, seed in enumerate((1, 2)):
        out = step.training_step(model, batch_factory(seed=seed), iteration=it, total_iters=4)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        step.after_optimizer_step(model, iteration=it)
    assert int(step.gating.bank.count.sum()) > 0
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "step": step.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    nxt = batch_factory(seed=3)
    expected = step.training_step(model, nxt, iteration=2, total_iters=4).loss
    clone, fresh = model_factory(seed=11), _step(caat=caat)
    clone.load_state_dict(saved["model"])
    fresh.load_state_dict(saved["step"])
    assert torch.equal(fresh.training_step(clone, nxt, iteration=2, total_iters=4).loss, expected)
    fresh.load_state_dict({})  # an empty state (fresh run) is accepted


def test_flat_overrides_reach_nested_configs() -> None:
    step = get_method(
        "slum-i", num_classes=3, tau_low=0.6, queue_size=32, threshold=0.9, use_prototypes=False
    )
    assert isinstance(step, SlumIStep)
    cfg = step.slum_config
    assert cfg.caat.tau_low == 0.6 and cfg.bank.queue_size == 32 and cfg.unimatch.threshold == 0.9
    assert step.gating.caat.thresholds.shape == (3,) and step.gating.bank.queues.shape[0] == 3
    assert not step.uses_projection
    with pytest.raises(TypeError, match="unknown"):
        get_method("slum-i", no_such_option=1)
    with pytest.raises(TypeError):
        get_method("unimatch", tau_low=0.5)


def test_class_count_mismatch_is_reported(model_factory, batch_factory) -> None:
    with pytest.raises(ValueError, match="num_classes=2"):
        _step(num_classes=3).training_step(model_factory(), batch_factory(), iteration=0, total_iters=1)
