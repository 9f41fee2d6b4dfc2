"""build_cube / open_cube / band_statistics on tiny static catalogs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from catalog_fixtures import NATIVE_BBOX, RES, SHAPE, native_grid, scene

from slumwatch.catalogs.cube import (
    DIMS,
    CubeRef,
    GridSpec,
    band_statistics,
    build_cube,
    composite_window,
    cube_summary,
    open_cube,
    resolve_geobox,
    utm_crs,
)
from slumwatch.catalogs.errors import CubeError, EmptySearchError, EmptyYearError, GridMismatchError
from slumwatch.catalogs.readers import WindowData
from slumwatch.catalogs.search import search_items
from slumwatch.catalogs.testing import CLOUD, make_static_catalog, scene_pixels
from slumwatch.catalogs.tiling import TileSpec

TILE = TileSpec(32)


def _build(items, out: Path, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("grid", native_grid(resampling="nearest"))
    return build_cube(items=items, out=out, tile=TILE, window_tiles=2, progress=False, **kw)


@pytest.fixture(scope="module")
def cube3(three_year_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> CubeRef:
    items = search_items(catalog=three_year_catalog)
    return _build(items, tmp_path_factory.mktemp("cube3") / "cube.zarr", bands=["red", "green", "blue"])


def test_layout_matches_contract(cube3: CubeRef) -> None:
    ds = open_cube(cube3)
    img = ds["imagery"]
    assert img.dims == DIMS
    assert img.dtype == np.uint8
    assert ds["valid"].dims == ("time", "y", "x") and ds["valid"].dtype == np.uint8
    assert list(ds["time"].dt.year.values) == [2015, 2016, 2017]
    assert [str(b) for b in ds["band"].values] == ["red", "green", "blue"]
    assert img.shape == (3, 3, *SHAPE)
    assert img.encoding["chunks"] == (1, 3, 32, 32)
    assert img.attrs["nodata"] == 0 and img.rio.nodata == 0
    assert ds.rio.crs.to_epsg() == 32643
    t = ds.rio.transform()
    assert (t.a, t.e, t.c, t.f) == pytest.approx((RES, -RES, NATIVE_BBOX[0], NATIVE_BBOX[3]))
    assert float(ds["x"][0]) == pytest.approx(NATIVE_BBOX[0] + RES / 2)
    assert ds.attrs["slumwatch:items"]["2016"] == ["clear-2016", "cloudy-2016"]
    assert ds.attrs["slumwatch:version"]
    assert ds.attrs["slumwatch:grid"]["crs"] == "EPSG:32643"


def test_best_composite_is_exact_on_native_grid(cube3: CubeRef) -> None:
    ds = open_cube(cube3)
    img15, cloud15 = scene_pixels(scene(2015, cloud_fraction=0.25))
    got = ds["imagery"].sel(time="2015").values[0]
    clear = cloud15 != CLOUD
    np.testing.assert_array_equal(got[:, clear], img15[:, clear])
    assert (got[:, ~clear] == 0).all()
    np.testing.assert_array_equal(ds["valid"].sel(time="2015").values[0], clear.astype("uint8"))
    # 2016: clear scene wins everywhere (least cloudy first)
    img16, _ = scene_pixels(scene(2016, seed=3))
    np.testing.assert_array_equal(ds["imagery"].sel(time="2016").values[0], img16)


def test_summary_reports_valid_fraction(cube3: CubeRef) -> None:
    by_year = {s.year: s for s in cube_summary(cube3)}
    assert by_year[2015].valid_fraction == pytest.approx(0.75)
    assert by_year[2016].scenes == 2 and by_year[2016].valid_fraction == 1.0


def test_band_statistics_uint8(cube3: CubeRef) -> None:
    stats = band_statistics(open_cube(cube3), max_samples=5000)
    assert set(stats) == {"red", "green", "blue"}
    for lo, hi in stats.values():
        assert 1 <= lo < 10 and 240 < hi <= 250


def test_median_composite_and_uint16(tmp_path: Path) -> None:
    cat = make_static_catalog(
        [scene(2020, nbands=4, dtype="uint16", seed=s, item_id=f"s{s}") for s in (1, 2, 3)],
        root=tmp_path / "c",
    )
    items = search_items(catalog=cat)
    ref = _build(items, tmp_path / "m.zarr", composite="median")
    ds = open_cube(ref)
    assert ds["imagery"].dtype == np.uint16
    assert [str(b) for b in ds["band"].values] == ["red", "green", "blue", "nir"]
    stack = np.stack([scene_pixels(scene(2020, nbands=4, dtype="uint16", seed=s))[0] for s in (1, 2, 3)])
    np.testing.assert_array_equal(ds["imagery"].values[0], np.median(stack, axis=0).astype("uint16"))
    stats = band_statistics(ds, low=0.0, high=100.0)
    assert stats["nir"][1] > 255  # uint16 range is kept


def test_composite_window_best_and_median() -> None:
    image = np.array([[[[0, 5]]], [[[7, 9]]]], dtype="uint8")  # (item, band, y, x)
    mask = np.array([[[0, 1]], [[0, 0]]], dtype="uint8")
    best, valid = composite_window(WindowData(image=image, mask=mask), method="best")
    assert best.tolist() == [[[7, 9]]] and valid.tolist() == [[1, 1]]
    med, _ = composite_window(WindowData(image=image, mask=None), method="median")
    assert med.tolist() == [[[7, 7]]]


def test_rerun_is_idempotent_and_skips(three_year_catalog: Path, tmp_path: Path) -> None:
    items = search_items(catalog=three_year_catalog, datetime="2015/2015")
    out = tmp_path / "c.zarr"
    _build(items, out)
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    calls: list[int] = []
    _build(items, out, on_window=lambda d, t: calls.append(d))
    after = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert calls == [] and before == after


def test_new_year_appends_without_rewriting(three_year_catalog: Path, tmp_path: Path) -> None:
    items = search_items(catalog=three_year_catalog)
    out = tmp_path / "c.zarr"
    _build(items, out, years=[2015])
    chunk = out / "imagery" / "c" / "0" / "0" / "1" / "1"
    stamp = chunk.stat().st_mtime_ns
    _build(items, out, years=[2015, 2016])
    ds = open_cube(CubeRef(out))
    assert list(ds["time"].dt.year.values) == [2015, 2016]
    assert chunk.stat().st_mtime_ns == stamp
    early = search_items(catalog=make_static_catalog([scene(2014)], root=tmp_path / "c14"))
    with pytest.raises(CubeError, match="appended"):
        _build(early, out, years=[2014])


def test_store_grid_mismatch_is_loud(three_year_catalog: Path, tmp_path: Path) -> None:
    items = search_items(catalog=three_year_catalog, datetime="2015/2015")
    out = tmp_path / "c.zarr"
    _build(items, out)
    with pytest.raises(GridMismatchError, match=r"shape|transform"):
        _build(items, out, grid=GridSpec(bbox=NATIVE_BBOX, bbox_crs="EPSG:32643", resolution=1.2))


def test_aoi_outside_every_item(three_year_catalog: Path, tmp_path: Path) -> None:
    items = search_items(catalog=three_year_catalog)
    with pytest.raises(EmptySearchError, match="outside every"):
        _build(items, tmp_path / "x.zarr", grid=GridSpec(bbox=(10.0, 10.0, 10.001, 10.001)))
    assert not (tmp_path / "x.zarr").exists()


def test_all_nodata_year_policies(tmp_path: Path) -> None:
    cat = make_static_catalog([scene(2018), scene(2019, all_nodata=True)], root=tmp_path / "c")
    items = search_items(catalog=cat)
    keep = _build(items, tmp_path / "keep.zarr")
    by_year = {s.year: s for s in cube_summary(keep)}
    assert by_year[2019].valid_fraction == 0.0
    with pytest.raises(EmptyYearError, match="2019") as info:
        _build(items, tmp_path / "raise.zarr", on_empty_year="raise")
    assert info.value.year == 2019
    dropped = _build(items, tmp_path / "drop.zarr", on_empty_year="drop")
    assert list(open_cube(dropped)["time"].dt.year.values) == [2018]


def test_default_grid_is_utm_of_aoi() -> None:
    assert utm_crs(72.8, 19.0) == "EPSG:32643"
    assert utm_crs(-43.2, -22.9) == "EPSG:32723"
    gb = resolve_geobox(GridSpec(bbox=(72.80, 19.00, 72.81, 19.01)))
    assert str(gb.crs) == "EPSG:32643"
    assert gb.resolution.x == pytest.approx(0.6)
    assert gb.affine.c % 0.6 == pytest.approx(0.0, abs=1e-6) or gb.affine.c % 0.6 == pytest.approx(
        0.6, abs=1e-6
    )


def test_open_cube_missing_store(tmp_path: Path) -> None:
    with pytest.raises(CubeError, match="no cube"):
        open_cube(CubeRef(tmp_path / "none.zarr"))


def test_best_composite_prefers_least_cloudy_whatever_the_order(tmp_path: Path) -> None:
    cat = make_static_catalog(
        [scene(2016, seed=5, cloud_fraction=0.5, item_id="a-cloudy"), scene(2016, seed=3, item_id="z-clear")],
        root=tmp_path / "c",
    )
    items = search_items(catalog=cat)
    assert [it.id for it in items] == ["a-cloudy", "z-clear"]
    ds = open_cube(_build(items, tmp_path / "o.zarr"))
    np.testing.assert_array_equal(ds["imagery"].values[0], scene_pixels(scene(2016, seed=3))[0])
    assert ds.attrs["slumwatch:items"]["2016"] == ["z-clear", "a-cloudy"]


def test_default_grid_is_items_native_grid(three_year_catalog: Path) -> None:
    items = search_items(catalog=three_year_catalog)
    gb = resolve_geobox(GridSpec(), items)
    assert str(gb.crs) == "EPSG:32643" and gb.shape.yx == SHAPE
    assert (gb.affine.c, gb.affine.f) == pytest.approx((NATIVE_BBOX[0], NATIVE_BBOX[3]))


def test_native_grid_off_lattice_copies_pixels_exactly(tmp_path: Path) -> None:
    """Scenes whose origin is not a multiple of the resolution are not resampled half a pixel off."""
    from catalog_fixtures import RES

    spec = scene(2019, seed=11)
    off = type(spec)(**{**spec.__dict__, "origin": (270000.0, 2110000.0)})  # 2110000 / 0.6 is not an integer
    items = search_items(catalog=make_static_catalog([off], root=tmp_path / "c"))
    ds = open_cube(
        build_cube(items=items, out=tmp_path / "o.zarr", grid=GridSpec(resolution=RES), progress=False)
    )
    assert ds["imagery"].shape[2:] == SHAPE
    np.testing.assert_array_equal(ds["imagery"].values[0], scene_pixels(off)[0])
    bbox_box = resolve_geobox(GridSpec(bbox=tuple(items[0].bbox)), items)
    assert ((bbox_box.affine.f - 2110000.0) / RES) == pytest.approx(
        round((bbox_box.affine.f - 2110000.0) / RES)
    )
