"""Fixtures of the catalogs tests: tiny georeferenced COGs + static STAC catalogs in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from catalog_fixtures import scene

from slumwatch.catalogs.testing import make_static_catalog


@pytest.fixture(scope="session")
def three_year_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2015 (25% cloud), 2016 (two scenes: clear + half cloud), 2017 (4-band uint8), all on one grid."""
    root = tmp_path_factory.mktemp("cat3")
    return make_static_catalog(
        [
            scene(2015, cloud_fraction=0.25),
            scene(2016, seed=3, cloud_fraction=0.0, item_id="clear-2016"),
            scene(2016, seed=5, cloud_fraction=0.5, item_id="cloudy-2016"),
            scene(2017, seed=7),
        ],
        root=root,
    )
