"""The code stays ruff-clean (every run) and mypy-clean (slow marker: ``make test-all`` / ``make lint``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = ("slumwatch", "catalogs", "models", "actors", "pipelines", "dashboards")


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_ruff_check_and_format(repo_root: Path) -> None:
    check = subprocess.run([_tool("ruff"), "check", "."], cwd=repo_root, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [_tool("ruff"), "format", "--check", "."], cwd=repo_root, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.slow
def test_mypy(repo_root: Path) -> None:
    result = subprocess.run([_tool("mypy"), *PACKAGES], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
