"""rasterize_labels from vectors (with/without year) and per-year raster masks."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely.geometry as sg
from catalog_fixtures import NATIVE_BBOX, RES, native_grid, scene

from slumwatch.catalogs.cube import CubeRef, build_cube, open_cube
from slumwatch.catalogs.errors import LabelError
from slumwatch.catalogs.labels import IGNORE, SLUM, rasterize_labels
from slumwatch.catalogs.search import search_items
from slumwatch.catalogs.testing import make_static_catalog, write_cog
from slumwatch.catalogs.tiling import TileSpec

X0, Y1 = NATIVE_BBOX[0], NATIVE_BBOX[3]


@pytest.fixture()
def cube(tmp_path: Path) -> CubeRef:
    cat = make_static_catalog([scene(2015, cloud_fraction=0.25), scene(2016, seed=2)], root=tmp_path / "cat")
    return build_cube(
        items=search_items(catalog=cat),
        out=tmp_path / "cube.zarr",
        grid=native_grid(resampling="nearest"),
        tile=TileSpec(32),
        window_tiles=2,
        progress=False,
    )


def _box(r0: int, r1: int, c0: int, c1: int) -> sg.Polygon:
    return sg.box(X0 + c0 * RES, Y1 - r1 * RES, X0 + c1 * RES, Y1 - r0 * RES)


def test_vector_labels_per_year(cube: CubeRef, tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"year": [2015, 2016, 2016]},
        geometry=[_box(40, 60, 10, 30), _box(40, 60, 10, 30), _box(70, 80, 100, 120)],
        crs="EPSG:32643",
    ).to_crs("EPSG:4326")  # another CRS than the cube's
    src = tmp_path / "slums.parquet"
    gdf.to_parquet(src)
    rasterize_labels(cube=cube, source=src)
    ds = open_cube(cube)
    lab = ds["labels"].values
    assert ds["labels"].dims == ("time", "y", "x") and lab.dtype == np.uint8
    assert (lab[0, 42:58, 12:28] == SLUM).all()
    assert (lab[0, 72:78, 102:118] == 0).all()
    assert (lab[1, 72:78, 102:118] == SLUM).all()
    assert (lab[0, :24] == IGNORE).all()  # cloudy rows of 2015 are ignored
    assert abs(int((lab[1] == SLUM).sum()) - (20 * 20 + 10 * 20)) <= 40
    assert "slumwatch:grid" in ds.attrs  # root attributes survive


def test_vector_without_year_applies_to_all(cube: CubeRef, tmp_path: Path) -> None:
    src = tmp_path / "s.geojson"
    gpd.GeoDataFrame(geometry=[_box(40, 60, 10, 30)], crs="EPSG:32643").to_file(src, driver="GeoJSON")
    rasterize_labels(cube=cube, source=src)
    lab = open_cube(cube)["labels"].values
    assert (lab[:, 45, 15] == SLUM).all()
    with pytest.raises(LabelError, match="no 'year' column"):
        rasterize_labels(cube=cube, source=src, all_years_if_missing=False)


def test_raster_masks_per_year(cube: CubeRef, tmp_path: Path) -> None:
    from rasterio.transform import Affine

    masks = tmp_path / "masks"
    for year, val in ((2015, 1), (2016, 0)):
        arr = np.full((96, 128), val, dtype="uint8")
        arr[:, :10] = 255
        write_cog(
            masks / f"{year}.tif",
            arr,
            crs="EPSG:32643",
            transform=Affine(RES, 0, X0, 0, -RES, Y1),
            nodata=255,
        )
    rasterize_labels(cube=cube, source=masks, mask_invalid=False)
    lab = open_cube(cube)["labels"].values
    assert (lab[0, :, 10:] == SLUM).all() and (lab[1, :, 10:] == 0).all()
    assert (lab[:, :, :10] == IGNORE).all()


def test_missing_source_is_loud(cube: CubeRef, tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="does not exist"):
        rasterize_labels(cube=cube, source=tmp_path / "nope.parquet")
