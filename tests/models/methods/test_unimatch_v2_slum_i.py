"""SLUM-i on UniMatch V2: CAAT + prototypes fed by the EMA teacher, ablation switches, state."""

from __future__ import annotations

import io

import torch

from slumwatch.models.methods import get_method
from slumwatch.models.methods.caat import CAATConfig
from slumwatch.models.methods.prototype_bank import PrototypeBankConfig
from slumwatch.models.methods.unimatch_v2 import UniMatchV2Config, UniMatchV2Step
from slumwatch.models.methods.unimatch_v2_slum_i import UniMatchV2SlumIConfig, UniMatchV2SlumIStep

V2 = UniMatchV2Config(threshold=0.7)
BANK = PrototypeBankConfig(dim=8, queue_size=16, samples_per_class=4)
CAAT = CAATConfig(momentum=0.9, tau_low=0.5)


def _step(**kw: object) -> UniMatchV2SlumIStep:
    base = {"unimatch_v2": V2, "bank": BANK, "caat": CAAT}
    base.update(kw)
    return UniMatchV2SlumIStep(**base)  # type: ignore[arg-type]


def test_registered_defaults() -> None:
    step = get_method("unimatch-v2-slum-i")
    assert isinstance(step, UniMatchV2SlumIStep)
    assert step.slum_config == UniMatchV2SlumIConfig()
    assert step.uses_projection


def test_ablation_off_equals_unimatch_v2(model_factory, batch_factory) -> None:
    batch = batch_factory()
    torch.manual_seed(0)
    ours = _step(use_caat=False, use_prototypes=False).training_step(
        model_factory(), batch, iteration=0, total_iters=1
    )
    torch.manual_seed(0)
    ref = UniMatchV2Step(config=V2).training_step(model_factory(), batch, iteration=0, total_iters=1)
    assert torch.equal(ours.loss, ref.loss)


def test_teacher_feeds_caat_and_bank_without_gradient(model_factory, batch_factory) -> None:
    model, step = model_factory(), _step()
    out = step.training_step(model, batch_factory(), iteration=0, total_iters=1)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    teacher = step.teacher.model
    assert teacher is not None
    assert any(r["proj"] for r in teacher.records)  # projection features come from the teacher
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert int(step.gating.bank.count.sum()) > 0
    assert not torch.allclose(step.gating.caat.thresholds, torch.full((2,), 0.5))
    assert {"tau_0", "tau_1", "bank_0", "bank_1"} <= set(out.logs)


def test_state_round_trip_reproduces_next_loss(model_factory, batch_factory) -> None:
    model, step = model_factory(), _step()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for it in range(2):
        torch.manual_seed(it)
        out = step.training_step(model, batch_factory(seed=it), iteration=it, total_iters=5)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        step.after_optimizer_step(model, iteration=it)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "step": step.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    nxt = batch_factory(seed=7)
    torch.manual_seed(3)
    expected = step.training_step(model, nxt, iteration=2, total_iters=5).loss
    clone, fresh = model_factory(seed=5), _step()
    clone.load_state_dict(saved["model"])
    fresh.load_state_dict(saved["step"])
    torch.manual_seed(3)
    assert torch.equal(fresh.training_step(clone, nxt, iteration=2, total_iters=5).loss, expected)
