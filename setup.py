"""Package layout: each top-level code folder is the subpackage ``slumwatch.<folder>``.

The mapping is a setuptools ``package_dir``; it works for editable and wheel installs alike.
Metadata lives in ``pyproject.toml``.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
PACKAGE_DIR = {
    "slumwatch": "slumwatch",
    "slumwatch.pipelines": "pipelines",
    "slumwatch.actors": "actors",
    "slumwatch.models": "models",
    "slumwatch.catalogs": "catalogs",
    "slumwatch.deploy": "deploy",
    "slumwatch.dashboards": "dashboards",
}


def _packages() -> list[str]:
    found: list[str] = []
    for package, folder in PACKAGE_DIR.items():
        found.append(package)
        found.extend(f"{package}.{sub}" for sub in find_packages(str(ROOT / folder)))
    return found


setup(
    packages=_packages(),
    package_dir=PACKAGE_DIR,
    package_data={
        "slumwatch.deploy": ["*.yaml", "*.yml", "configs/*.yaml"],
        "slumwatch.dashboards": ["templates/*.html", "templates/*.css", "templates/*.js"],
        "slumwatch.catalogs": ["data/*.json", "data/*.csv"],
    },
)
