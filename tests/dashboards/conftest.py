"""Fixtures for the report tests: fake run folders generated on the fly (see ``report_fakes``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_fakes import FakeRun, make_run


@pytest.fixture
def fake_run_factory(tmp_path: Path) -> Callable[..., FakeRun]:
    """Return ``make(**options) -> FakeRun`` building a run under a fresh subfolder of tmp_path."""
    counter = iter(range(1000))

    def make(**options: Any) -> FakeRun:
        return make_run(tmp_path / f"case{next(counter)}", **options)

    return make


@pytest.fixture
def fake_run(fake_run_factory: Callable[..., FakeRun]) -> FakeRun:
    """A complete fake run with a uint8 imagery cube."""
    return fake_run_factory()
