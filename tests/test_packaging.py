"""The wheel maps each top-level folder to slumwatch.<folder> and installs on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

SUBPACKAGES = ("models", "pipelines", "actors", "catalogs", "dashboards", "deploy")


@pytest.mark.integration
def test_wheel_installs_and_imports_in_a_fresh_venv(repo_root: Path, tmp_path: Path) -> None:
    uv = Path(sys.executable).parent / "uv"
    dist = tmp_path / "dist"
    subprocess.run(
        [str(uv), "build", "--wheel", "--out-dir", str(dist), str(repo_root)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = dist.glob("slumwatch-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([str(uv), "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(uv), "pip", "install", "--python", str(py), "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    # Third-party dependencies come from the project venv's site-packages, without its
    # editable finder (site dirs' .pth files are only processed for real site dirs).
    site = Path(sysconfig.get_paths()["purelib"])
    venv_site = next((venv / "lib").glob("python*/site-packages"))
    (venv_site / "zz_project_deps.pth").write_text(str(site) + "\n")
    code = (
        "import importlib, slumwatch; "
        f"mods = [importlib.import_module('slumwatch.' + m) for m in {SUBPACKAGES!r}]; "
        "import slumwatch.catalogs.tiling, slumwatch.cli; "
        "print(slumwatch.__file__); print(mods[0].__file__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(py), "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True, env=env
    )
    lines = out.stdout.strip().splitlines()
    assert all(str(venv) in line for line in lines), lines
    assert lines[1].endswith("slumwatch/models/__init__.py")
