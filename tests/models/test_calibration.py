"""Threshold calibration on held-out pixels."""

from __future__ import annotations

import math

import torch

from slumwatch.models.calibration import best_f1_threshold


def test_picks_the_threshold_that_separates_the_classes() -> None:
    proba = torch.tensor([0.1, 0.2, 0.3, 0.35, 0.4, 0.9, 0.95])
    target = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    thr, f1 = best_f1_threshold(proba, target)
    assert 0.3 < thr <= 0.35 and f1 == 1.0


def test_ignored_pixels_do_not_count() -> None:
    proba = torch.tensor([0.9, 0.1, 0.99])
    target = torch.tensor([1, 0, 255])
    assert best_f1_threshold(proba, target)[1] == 1.0
    thr, f1 = best_f1_threshold(torch.tensor([0.4]), torch.tensor([255]))
    assert thr == 0.5 and math.isnan(f1)
