"""Shared grid constants and scene helpers of the catalogs tests (imported by conftest and tests)."""

from __future__ import annotations

from slumwatch.catalogs.cube import GridSpec
from slumwatch.catalogs.testing import SceneSpec

#: Fixture grid: 128 x 96 px at 0.6 m, upper-left at (500000.4, 2100000.0) in UTM 43N (on the 0.6 m lattice).
ORIGIN = (500_000.4, 2_100_000.0)
RES = 0.6
SHAPE = (96, 128)
NATIVE_BBOX = (ORIGIN[0], ORIGIN[1] - SHAPE[0] * RES, ORIGIN[0] + SHAPE[1] * RES, ORIGIN[1])


def scene(year: int, **kw: object) -> SceneSpec:
    """A fixture scene on the common grid."""
    return SceneSpec(year=year, origin=ORIGIN, resolution=RES, shape=SHAPE, **kw)  # type: ignore[arg-type]


def native_grid(**kw: object) -> GridSpec:
    """The cube grid equal to the fixture scenes' grid."""
    return GridSpec(bbox=NATIVE_BBOX, bbox_crs="EPSG:32643", resolution=RES, **kw)  # type: ignore[arg-type]
