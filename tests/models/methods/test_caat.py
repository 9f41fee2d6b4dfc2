"""Class-Aware Adaptive Thresholding: EMA of per-class mean confidence, clipped, state round trip."""

from __future__ import annotations

import pytest
import torch

from slumwatch.models.methods.caat import CAATConfig, ClassAwareThreshold


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    conf = torch.tensor([[[0.9, 0.8], [0.6, 0.99]]])
    label = torch.tensor([[[0, 0], [1, 1]]])
    valid = torch.tensor([[[True, True], [True, False]]])
    return conf, label, valid


def test_defaults_start_at_tau_low() -> None:
    caat = ClassAwareThreshold(CAATConfig())
    assert caat.config.momentum == 0.999 and caat.config.tau_high == 0.95 and caat.config.tau_low == 0.7
    assert torch.allclose(caat.thresholds, torch.full((2,), 0.7))


def test_ema_update_follows_hand_computation() -> None:
    cfg = CAATConfig(num_classes=3, momentum=0.9, tau_low=0.5, tau_high=0.95, init=0.8)
    caat = ClassAwareThreshold(cfg)
    conf, label, valid = _batch()
    tau = caat.update(conf, label, valid)
    # class 0: mean(0.9, 0.8) = 0.85; class 1: only 0.6 is valid; class 2 absent -> unchanged
    expected = torch.tensor([0.9 * 0.8 + 0.1 * 0.85, 0.9 * 0.8 + 0.1 * 0.6, 0.8])
    assert torch.allclose(tau, expected)
    tau2 = caat.update(conf, label, valid)
    assert torch.allclose(tau2[:2], 0.9 * expected[:2] + 0.1 * torch.tensor([0.85, 0.6]))
    assert tau2[2] == expected[2]


def test_thresholds_stay_clipped() -> None:
    caat = ClassAwareThreshold(CAATConfig(momentum=0.0, tau_low=0.7, tau_high=0.95))
    high = torch.full((1, 4, 4), 0.999)
    low = torch.full((1, 4, 4), 0.51)
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[..., 2:] = 1
    assert torch.allclose(caat.update(high, label), torch.full((2,), 0.95))
    assert torch.allclose(caat.update(low, label), torch.full((2,), 0.7))
    for _ in range(5):
        tau = caat.update(torch.rand(1, 4, 4) * 0.5 + 0.5, label)
        assert (tau >= 0.7).all() and (tau <= 0.95).all()


def test_gate_uses_threshold_of_predicted_class() -> None:
    caat = ClassAwareThreshold(CAATConfig(num_classes=2, init=0.8, tau_low=0.7, tau_high=0.95))
    caat.load_state_dict({"thresholds": torch.tensor([0.9, 0.75])})
    conf = torch.tensor([[0.85, 0.85, 0.95, 0.7]])
    label = torch.tensor([[0, 1, 0, 1]])
    assert caat.gate(conf, label).tolist() == [[False, True, True, False]]


def test_state_round_trip_and_validation() -> None:
    caat = ClassAwareThreshold(CAATConfig(momentum=0.5))
    conf, label, valid = _batch()
    caat.update(conf, label, valid)
    other = ClassAwareThreshold(CAATConfig(momentum=0.5))
    other.load_state_dict(caat.state_dict())
    assert torch.equal(other.thresholds, caat.thresholds)
    assert torch.equal(other.update(conf, label, valid), caat.update(conf, label, valid))
    with pytest.raises(ValueError):
        other.load_state_dict({"thresholds": torch.zeros(3)})
    with pytest.raises(ValueError):
        CAATConfig(tau_low=0.9, tau_high=0.8)
