"""Layering contracts (import-linter) and the fixed layout.

import-linter walks a package's folder on disk, but ``slumwatch.<folder>`` lives in
top-level folders (a setuptools ``package_dir`` mapping). The test lays the package out
as the wheel would (a copy in tmp_path) and lints that copy with the project's contracts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SUBPACKAGES = ("pipelines", "actors", "models", "catalogs", "deploy", "dashboards")


def _stage_package(repo_root: Path, dest: Path) -> Path:
    pkg = dest / "slumwatch"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(repo_root / "slumwatch", pkg, ignore=ignore)
    for folder in SUBPACKAGES:
        shutil.copytree(repo_root / folder, pkg / folder, ignore=ignore)
    return dest


def test_import_contracts_hold(repo_root: Path, tmp_path: Path) -> None:
    """models import no Ray/Prefect/xarray, catalogs no torch, dashboards only read outputs..."""
    staged = _stage_package(repo_root, tmp_path / "src")
    lint_imports = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(staged)}
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--config", str(repo_root / "pyproject.toml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout and "BROKEN" not in result.stdout


def test_layout_is_the_fixed_one(repo_root: Path) -> None:
    for folder in (*SUBPACKAGES, "tests"):
        assert (repo_root / folder).is_dir(), folder
    assert (repo_root / "pyproject.toml").is_file()
