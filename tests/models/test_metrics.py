"""Confusion-matrix scores agree with torchmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

from slumwatch.models import ConfusionMatrix

IGNORE = 255


@pytest.mark.parametrize("num_classes", [2, 4])
def test_scores_match_torchmetrics(num_classes: int) -> None:
    gen = torch.Generator().manual_seed(num_classes)
    pred = torch.randint(0, num_classes, (3, 40, 50), generator=gen)
    target = torch.randint(0, num_classes, (3, 40, 50), generator=gen)
    target[:, :5] = IGNORE
    matrix = ConfusionMatrix(num_classes, ignore_index=IGNORE)
    matrix.update(pred[:2], target[:2])
    matrix.update(pred[2:].numpy(), target[2:].numpy())
    scores = matrix.compute()

    kwargs = {"num_classes": num_classes, "ignore_index": IGNORE}
    iou = MulticlassJaccardIndex(average=None, **kwargs)(pred, target)
    f1 = MulticlassF1Score(average=None, **kwargs)(pred, target)
    acc = MulticlassAccuracy(average="micro", **kwargs)(pred, target)
    np.testing.assert_allclose(scores.iou, iou.numpy(), rtol=1e-6)
    np.testing.assert_allclose(scores.f1, f1.numpy(), rtol=1e-6)
    assert scores.miou == pytest.approx(float(iou.mean()), rel=1e-6)
    assert scores.mean_f1 == pytest.approx(float(f1.mean()), rel=1e-6)
    assert scores.pixel_accuracy == pytest.approx(float(acc), rel=1e-6)
    assert scores.num_pixels == int((target != IGNORE).sum())


def test_scores_accept_logits() -> None:
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(logits, target)
    b.update(logits.argmax(1), target)
    assert a.compute() == b.compute()


def test_absent_class_is_nan_and_left_out_of_the_mean() -> None:
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    matrix = ConfusionMatrix(3)
    matrix.update(pred, target)
    scores = matrix.compute()
    assert math.isnan(scores.iou[2])
    assert scores.iou[0] == pytest.approx(0.5)
    assert scores.iou[1] == pytest.approx(2 / 3)
    assert scores.miou == pytest.approx((0.5 + 2 / 3) / 2)
    assert scores.to_dict()["iou"][2] is None


def test_out_of_range_ids_and_shape_mismatch_raise() -> None:
    matrix = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="outside"):
        matrix.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 3))
    with pytest.raises(ValueError, match="shape"):
        matrix.update(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))


def test_merge_and_reset() -> None:
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    a.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    b.update(torch.tensor([[1, 1]]), torch.tensor([[0, 1]]))
    a.merge(b)
    assert a.compute().num_pixels == 4
    a.reset()
    assert a.compute().num_pixels == 0
    assert math.isnan(a.compute().miou)
