"""ST / ST++: the re-training step (CE + optional GRAM), stability ranking, selection, TTA labels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slumwatch.models.methods import get_method
from slumwatch.models.methods.self_training import (
    SelfTrainingStep,
    STPlusPlusStep,
    pseudo_label_tta,
    select_reliable,
    stability_scores,
)


def test_registered_names() -> None:
    st, stpp = get_method("st"), get_method("st++", use_gram=True)
    assert isinstance(st, SelfTrainingStep) and st.name == "st" and st.needs_unlabeled
    assert isinstance(stpp, STPlusPlusStep) and stpp.name == "st++" and stpp.config.use_gram
    assert stpp.config.gram_weight == 1e-3


def test_step_loss_is_joint_ce_with_ignored_pixels(model_factory, batch_factory) -> None:
    model, batch = model_factory(), batch_factory()
    batch["u_ignore_mask"][0, 3:6, 3:6] = 255  # e.g. cutout
    with torch.no_grad():
        logits = model(torch.cat((batch["image"], batch["u_image_s"])))
        pseudo = batch["u_label"].masked_fill(batch["u_ignore_mask"] == 255, 255)
        expected = F.cross_entropy(logits, torch.cat((batch["label"], pseudo)), ignore_index=255)
    out = SelfTrainingStep().training_step(model, batch, iteration=0, total_iters=1)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    out.loss.backward()
    assert model.head.weight.grad is not None


def test_step_gram_term_uses_detached_weak_view(model_factory, batch_factory) -> None:
    model, batch = model_factory(gram_branch=True), batch_factory()
    n_l = batch["image"].shape[0]
    with torch.no_grad():
        joint = model.forward_dict(torch.cat((batch["image"], batch["u_image_s"])), gram=True)
        weak = model.forward_dict(batch["u_image_w"], gram=True)["gram"]
        pseudo = batch["u_label"].masked_fill(batch["u_ignore_mask"] == 255, 255)
        ce = F.cross_entropy(joint["logits"], torch.cat((batch["label"], pseudo)), ignore_index=255)
        gram = ((weak - joint["gram"][n_l:]) ** 2).mean()
    model.records.clear()
    step = SelfTrainingStep(use_gram=True, gram_weight=0.5)
    out = step.training_step(model, batch, iteration=0, total_iters=1)
    assert out.loss.item() == pytest.approx((ce + 0.5 * gram).item(), rel=1e-5)
    assert out.logs["loss_gram"] == pytest.approx(gram.item(), rel=1e-5)
    weak_record = next(r for r in model.records if r["batch"] == batch["u_image_w"].shape[0])
    assert not weak_record["out"]["gram"].requires_grad
    out.loss.backward()
    assert model.gram_scale.grad is not None and model.gram_scale.grad != 0


def test_stability_scores_hand_example_not_rounded() -> None:
    final = torch.tensor([[[0, 0], [1, 1]], [[0, 0], [0, 0]], [[1, 1], [1, 1]]])
    ckpt_a = torch.tensor([[[0, 0], [1, 1]], [[0, 0], [0, 0]], [[0, 0], [0, 0]]])
    ckpt_b = torch.tensor([[[0, 1], [1, 1]], [[1, 0], [0, 0]], [[1, 1], [1, 1]]])
    scores = stability_scores([ckpt_a, ckpt_b], final, num_classes=2)
    # image 0: A = 1; B: IoU0 = 1/2, IoU1 = 2/3 -> 7/12.  image 1: A = 1 (class 1 absent: skipped);
    # B: IoU0 = 3/4, IoU1 = 0/1 -> 3/8.  image 2: A: 0 and 0 -> 0; B = 1.
    expected = torch.tensor([(1 + 7 / 12) / 2, (1 + 3 / 8) / 2, 0.5], dtype=torch.float64)
    assert torch.allclose(scores, expected)
    assert scores[0].item() != round(scores[0].item(), 2)
    assert torch.allclose(stability_scores([ckpt_a, ckpt_b], final), expected)  # K inferred
    reliable, unreliable = select_reliable(scores, ["a", "b", "c"], fraction=0.5)
    assert reliable == ["a"] and unreliable == ["b", "c"]
    reliable, unreliable = select_reliable(scores, ["a", "b", "c"], fraction=2 / 3)
    assert reliable == ["a", "b"] and unreliable == ["c"]


def test_stability_scores_count_only_valid_pixels() -> None:
    final = torch.tensor([[[0, 0], [1, 1]], [[0, 1], [0, 1]]])
    ckpt = torch.tensor([[[0, 1], [1, 0]], [[1, 0], [1, 0]]])
    valid = torch.tensor([[[True, False], [True, False]], [[False, False], [False, False]]])
    scores = stability_scores([ckpt], final, num_classes=2, valid=valid)
    # image 0: only (0,0) -> 0/0 agree and (1,0) -> 1/1 agree count: IoU0 = IoU1 = 1.
    # image 1: no valid pixel -> NaN (ranked last by select_reliable).
    assert scores[0].item() == 1.0 and torch.isnan(scores[1])
    unmasked = stability_scores([ckpt], final, num_classes=2)
    assert unmasked[0].item() < 1.0
    with pytest.raises(ValueError, match="valid shape"):
        stability_scores([ckpt], final, valid=valid[:, :1])


def test_select_reliable_ties_and_nan() -> None:
    reliable, unreliable = select_reliable([0.5, float("nan"), 0.5, 0.9], [10, 11, 12, 13])
    assert reliable == [13, 10] and unreliable == [12, 11]
    with pytest.raises(ValueError):
        select_reliable([0.1], [1, 2])
    with pytest.raises(ValueError):
        stability_scores([], torch.zeros(1, 2, 2, dtype=torch.long))


def test_pseudo_label_tta(model_factory) -> None:
    model = model_factory()
    images = torch.rand(2, 3, 16, 16)
    labels, conf = pseudo_label_tta(model, images, scales=(1.0,), flip=False)
    with torch.no_grad():
        probs = model(images).softmax(dim=1)
    assert torch.equal(labels, probs.argmax(dim=1))
    assert torch.allclose(conf, probs.max(dim=1).values)
    labels_f, conf_f = pseudo_label_tta(
        model, images, scales=(1.0,), flip=True
    )  # 1x1 convs: flip-equivariant
    assert torch.equal(labels_f, labels) and torch.allclose(conf_f, conf, atol=1e-6)
    model.train()
    model.records.clear()
    labels_ms, conf_ms = pseudo_label_tta(model, images)
    assert labels_ms.shape == (2, 16, 16) and labels_ms.dtype == torch.int64
    assert (conf_ms > 0.5 - 1e-6).all() and (conf_ms <= 1.0 + 1e-6).all()
    assert model.training  # mode restored
    assert not [r for r in model.records if r["training"]]  # every TTA forward ran in eval mode
    assert len(model.records) == 10  # 5 scales x (identity, flip)
