"""Fixtures of the catalogs tests: tiny georeferenced COGs + static STAC catalogs in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from slumwatch.catalogs.cube import GridSpec
from slumwatch.catalogs.testing import SceneSpec, make_static_catalog

#: Fixture grid: 128 x 96 px at 0.6 m, upper-left at (500000.4, 2100000) in UTM 43N (on the 0.6 m lattice).
ORIGIN = (500_000.4, 2_100_000.2)
RES = 0.6
SHAPE = (96, 128)
NATIVE_BBOX = (ORIGIN[0], ORIGIN[1] - SHAPE[0] * RES, ORIGIN[0] + SHAPE[1] * RES, ORIGIN[1])


def scene(year: int, **kw: object) -> SceneSpec:
    """A fixture scene on the common grid."""
    return SceneSpec(year=year, origin=ORIGIN, resolution=RES, shape=SHAPE, **kw)  # type: ignore[arg-type]


def native_grid(**kw: object) -> GridSpec:
    """The cube grid equal to the fixture scenes' grid."""
    return GridSpec(bbox=NATIVE_BBOX, bbox_crs="EPSG:32643", resolution=RES, **kw)  # type: ignore[arg-type]


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
