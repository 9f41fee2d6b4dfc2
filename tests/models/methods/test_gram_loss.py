"""SegSlum GRAM texture-consistency loss."""

from __future__ import annotations

import pytest
import torch

from slumwatch.models.methods.gram import GRAM_WEIGHT, gram_consistency_loss


def test_mse_with_detached_weak_map() -> None:
    strong = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True)
    weak = torch.tensor([[[[1.0, 0.0], [3.0, 6.0]]]], requires_grad=True)
    loss = gram_consistency_loss(strong, weak)
    assert loss.item() == pytest.approx((0 + 4 + 0 + 4) / 4)
    loss.backward()
    assert weak.grad is None
    assert strong.grad is not None and torch.allclose(strong.grad, 2 * (strong - weak).detach() / 4)
    assert GRAM_WEIGHT == 1e-3


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        gram_consistency_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 4, 4))
