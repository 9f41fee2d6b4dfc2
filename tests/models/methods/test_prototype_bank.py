"""Prototype Bank: FIFO queues, seeded subsampling, reliability weights in [w_min, 1], state."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from slumwatch.models.methods.prototype_bank import (
    PrototypeBank,
    PrototypeBankConfig,
    similarity_to_weight,
)


def _bank(**kw: object) -> PrototypeBank:
    cfg = {"num_classes": 2, "dim": 3, "queue_size": 4, "samples_per_class": 2, "w_min": 0.2, "scale": 2.0}
    cfg.update(kw)
    return PrototypeBank(PrototypeBankConfig(**cfg))  # type: ignore[arg-type]


def test_defaults() -> None:
    cfg = PrototypeBankConfig()
    assert (cfg.queue_size, cfg.samples_per_class, cfg.dim) == (256, 64, 128)
    assert cfg.w_min == 0.1 and cfg.scale == 2.0


def test_queue_is_fifo_and_normalised() -> None:
    bank = _bank()
    vecs = torch.eye(3).repeat(2, 1) * torch.arange(1, 7).float()[:, None]  # 6 distinct vectors
    bank.push(0, vecs[:3])
    assert torch.allclose(bank.prototypes(0), F.normalize(vecs[:3], dim=1))
    bank.push(0, vecs[3:5])  # 5 pushed into a queue of 4: the oldest (vecs[0]) is gone
    assert int(bank.count[0]) == 4
    assert torch.allclose(bank.prototypes(0), F.normalize(vecs[1:5], dim=1))
    bank.push(0, vecs[5:6])
    assert torch.allclose(bank.prototypes(0), F.normalize(vecs[2:6], dim=1))
    assert bank.prototypes(1).shape == (0, 3)
    big = torch.randn(9, 3)
    bank.push(1, big)  # more than the queue: keep the newest 4, oldest first
    assert torch.allclose(bank.prototypes(1), F.normalize(big[-4:], dim=1))


def test_update_subsamples_gated_pixels_per_class_with_seeded_generator() -> None:
    feats = torch.randn(1, 3, 2, 2)
    label = torch.tensor([[[0, 0], [0, 1]]])
    keep = torch.tensor(
        [
            [
                [
                    True,
                    True,
                ],
                [True, False],
            ]
        ]
    )
    a, b = _bank(seed=5), _bank(seed=5)
    a.update(feats, label, keep)
    b.update(feats, label, keep)
    assert int(a.count[0]) == 2 and int(a.count[1]) == 0  # 3 gated class-0 pixels, capped at 2
    assert torch.equal(a.prototypes(0), b.prototypes(0))
    flat = F.normalize(feats.permute(0, 2, 3, 1).reshape(-1, 3)[:3], dim=1)
    for proto in a.prototypes(0):
        assert any(torch.allclose(proto, row) for row in flat)


def test_update_resizes_label_grid_to_feature_grid() -> None:
    bank = _bank(samples_per_class=100, queue_size=100)
    feats = torch.randn(2, 3, 2, 2)
    label = torch.ones(2, 8, 8, dtype=torch.long)
    bank.update(feats, label, torch.ones(2, 8, 8, dtype=torch.bool))
    assert int(bank.count[1]) == 8 and int(bank.count[0]) == 0


def test_reliability_weights_hand_example_and_bounds() -> None:
    bank = _bank()
    bank.push(0, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    feats = torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1, 1)  # cos = 1/sqrt(2) with both class-0 prototypes
    w0 = bank.reliability(feats, torch.zeros(1, 1, 1, dtype=torch.long))
    s = 1.0 / math.sqrt(2.0)
    assert w0.item() == pytest.approx(0.2 + 0.8 * math.exp(-2.0 * (1.0 - s)), rel=1e-6)
    w1 = bank.reliability(feats, torch.ones(1, 1, 1, dtype=torch.long))  # class 1 queue empty -> 1
    assert w1.item() == 1.0
    many = bank.reliability(torch.randn(2, 3, 4, 4), torch.randint(0, 2, (2, 16, 16)))
    assert many.shape == (2, 16, 16)
    assert (many >= 0.2).all() and (many <= 1.0).all()
    s_all = torch.linspace(-1, 1, 21)
    w = similarity_to_weight(s_all, w_min=0.2, scale=5.0)
    assert w[0] >= 0.2 and w[-1] == 1.0 and (w.diff() >= 0).all()


def test_state_round_trip_is_checkpoint_safe() -> None:
    bank = _bank(seed=1)
    bank.update(
        torch.randn(1, 3, 4, 4), torch.randint(0, 2, (1, 4, 4)), torch.ones(1, 4, 4, dtype=torch.bool)
    )
    buffer = io.BytesIO()
    torch.save(bank.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    other = _bank(seed=99)
    other.load_state_dict(state)
    for cls in range(2):
        assert torch.equal(other.prototypes(cls), bank.prototypes(cls))
    feats, label = torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    keep = torch.ones(1, 4, 4, dtype=torch.bool)
    bank.update(feats, label, keep)
    other.update(feats, label, keep)  # same generator state -> same subsample
    assert torch.equal(other.prototypes(0), bank.prototypes(0))
    with pytest.raises(ValueError):
        _bank(queue_size=5).load_state_dict(state)
