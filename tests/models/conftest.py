"""Shared fixtures for the slumwatch.models tests: one CPU thread, small deterministic inputs."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture
def images_even() -> torch.Tensor:
    """(2, 3, 64, 64) random images."""
    return torch.rand(2, 3, 64, 64)


@pytest.fixture
def images_odd() -> torch.Tensor:
    """(2, 3, 70, 90) random images (not a multiple of the stride)."""
    return torch.rand(2, 3, 70, 90)
