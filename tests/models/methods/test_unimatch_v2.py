"""UniMatch V2 step: EMA teacher (decay formula, no gradient), complementary dropout, loss formula."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from slumwatch.models.methods import get_method
from slumwatch.models.methods.comp_drop import complementary_dropout, complementary_masks
from slumwatch.models.methods.ema import EMATeacher, ema_decay
from slumwatch.models.methods.unimatch_v2 import UniMatchV2Config, UniMatchV2Step
from slumwatch.models.registry import get_model

THRESHOLD = 0.7


def _ce(logits: Tensor, target: Tensor) -> Tensor:
    return -logits.log_softmax(dim=1).gather(1, target.unsqueeze(1)).squeeze(1)


def _sgd_step(model, step, batch, iteration: int) -> None:
    out = step.training_step(model, batch, iteration=iteration, total_iters=10)
    model.zero_grad()
    out.loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p.sub_(0.5 * p.grad)
    step.after_optimizer_step(model, iteration=iteration)


def test_registered_defaults() -> None:
    step = get_method("unimatch-v2")
    assert isinstance(step, UniMatchV2Step) and step.needs_unlabeled
    assert step.config == UniMatchV2Config(
        threshold=0.95, ema_max_decay=0.996, comp_drop=True, keep_fraction=0.5
    )


def test_ema_decay_formula() -> None:
    assert ema_decay(0) == 0.0
    assert ema_decay(1) == 0.5
    assert ema_decay(9) == pytest.approx(0.9)
    assert ema_decay(249) == pytest.approx(0.996)
    assert ema_decay(10_000) == 0.996
    assert ema_decay(3, max_decay=0.5) == 0.5
    with pytest.raises(ValueError):
        ema_decay(-1)


def test_teacher_update_averages_parameters_and_buffers(model_factory) -> None:
    student = model_factory(seed=0)
    ema = EMATeacher()
    teacher = ema.ensure(student)
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    old_w = teacher.head.weight.clone()
    old_seen = teacher.seen.clone()
    with torch.no_grad():
        student.head.weight.add_(1.0)
        student.seen.fill_(7.0)
    decay = ema.update(student, iteration=4)
    assert decay == pytest.approx(0.8)
    assert torch.allclose(teacher.head.weight, 0.8 * old_w + 0.2 * student.head.weight)
    assert torch.allclose(teacher.seen, 0.8 * old_seen + 0.2 * student.seen)
    ema.update(student, iteration=0)  # decay 0: copy
    assert torch.equal(teacher.head.weight, student.head.weight)


def test_loss_formula_with_teacher_pseudo_labels(model_factory, batch_factory) -> None:
    model, batch = model_factory(), batch_factory()
    step = UniMatchV2Step(threshold=THRESHOLD, comp_drop=False)
    _sgd_step(model, step, batch_factory(seed=5), 0)
    _sgd_step(model, step, batch_factory(seed=6), 1)
    teacher = step.teacher.model
    assert teacher is not None and not torch.equal(teacher.head.weight, model.head.weight)
    with torch.no_grad():
        conf, y = teacher.forward_dict(batch["u_image_w"])["logits"].softmax(dim=1).max(dim=1)
        valid = batch["u_ignore_mask"] != 255
        sup = F.cross_entropy(model(batch["image"]), batch["label"], ignore_index=255)
        losses = []
        for k in (1, 2):
            box, strong = batch[f"u_cutmix_box{k}"], batch[f"u_image_s{k}"]
            image = torch.where(box[:, None], strong.flip(0), strong)
            target = torch.where(box, y.flip(0), y)
            gate = torch.where(box, conf.flip(0), conf) >= THRESHOLD
            v = torch.where(box, valid.flip(0), valid)
            losses.append((_ce(model(image), target) * (gate & v)).sum() / v.sum())
        expected = (sup + (losses[0] + losses[1]) / 2) / 2
    out = step.training_step(model, batch, iteration=2, total_iters=10)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_no_gradient_reaches_the_teacher(model_factory, batch_factory) -> None:
    model = model_factory()
    step = UniMatchV2Step(threshold=THRESHOLD)
    out = step.training_step(model, batch_factory(), iteration=0, total_iters=10)
    out.loss.backward()
    teacher = step.teacher.model
    assert teacher is not None
    for param in teacher.parameters():
        assert not param.requires_grad and param.grad is None
    teacher_records = [r for r in teacher.records if not r["training"]]
    assert teacher_records and not teacher_records[-1]["out"]["logits"].requires_grad
    assert model.head.weight.grad is not None and model.backbone.weight.grad is not None
    assert model.proj_head.weight.grad is None
    assert all(p is not q for p, q in zip(teacher.parameters(), model.parameters(), strict=True))


def test_complementary_masks() -> None:
    kept = torch.tensor([1])
    masks = complementary_masks(3, 5, kept=kept, device=torch.device("cpu"))
    first, second = masks[:3], masks[3:]
    assert torch.equal(first + second, torch.full((3, 5), 2.0))
    assert torch.equal(first[1], torch.ones(5)) and torch.equal(second[1], torch.ones(5))
    for row in (0, 2):
        assert set(first[row].tolist()) <= {0.0, 2.0}
        assert torch.equal(second[row], 2.0 - first[row])


def test_complementary_dropout_hook_on_backbone(model_factory) -> None:
    model = model_factory()
    x = torch.rand(4, 3, 8, 8)
    plain = model.backbone(x)
    torch.manual_seed(0)
    with complementary_dropout(model, keep_fraction=0.0):
        dropped = model.backbone(x)
    ratio = dropped / plain
    first, second = ratio[:2].mean(dim=(2, 3)), ratio[2:].mean(dim=(2, 3))
    assert torch.allclose(first + second, torch.full_like(first, 2.0), atol=1e-4)
    assert torch.equal(model.backbone(x), plain)  # hook removed after the block


def test_real_network_step_runs_with_complementary_dropout() -> None:
    torch.manual_seed(0)
    model = get_model("deeplabv3plus_resnet18", num_classes=2, in_channels=3)
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        plain = model(x)
        torch.manual_seed(1)
        with complementary_dropout(model):
            dropped = model(x)
    assert not torch.allclose(plain, dropped)
    model.train()
    batch = {
        "image": torch.rand(2, 3, 32, 32),
        "label": torch.randint(0, 2, (2, 32, 32)),
        "u_image_w": x[:2],
        "u_image_s1": torch.rand(2, 3, 32, 32),
        "u_image_s2": torch.rand(2, 3, 32, 32),
        "u_cutmix_box1": torch.zeros(2, 32, 32, dtype=torch.bool),
        "u_cutmix_box2": torch.ones(2, 32, 32, dtype=torch.bool),
    }
    out = get_method("unimatch-v2", threshold=0.0).training_step(model, batch, iteration=0, total_iters=1)
    assert torch.isfinite(out.loss)
    out.loss.backward()


def test_state_round_trip_reproduces_next_loss(model_factory, batch_factory) -> None:
    model, step = model_factory(), UniMatchV2Step(threshold=THRESHOLD)
    for it in range(2):
        torch.manual_seed(it)
        _sgd_step(model, step, batch_factory(seed=it), it)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "step": step.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    nxt = batch_factory(seed=9)
    torch.manual_seed(42)
    expected = step.training_step(model, nxt, iteration=2, total_iters=10).loss
    clone, fresh = model_factory(seed=3), UniMatchV2Step(threshold=THRESHOLD)
    clone.load_state_dict(saved["model"])
    fresh.load_state_dict(saved["step"])  # before the teacher exists: applied on first use
    torch.manual_seed(42)
    assert torch.equal(fresh.training_step(clone, nxt, iteration=2, total_iters=10).loss, expected)
