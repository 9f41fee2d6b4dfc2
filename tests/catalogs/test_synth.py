"""The ground-truthed multi-year synthetic city (``slumwatch.catalogs.synth``).

One session fixture generates the default ``tiny`` city (1024 x 1024, 2014-2024, seed 7)
once; the other tests use small odd-sized cities and a few years to stay fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
import shapely
from rasterio.features import rasterize, shapes
from rasterio.transform import Affine
from shapely.geometry import box, shape
from typer.testing import CliRunner

from slumwatch.catalogs.synth import (
    DEFAULT_YEARS,
    SHAPE_TYPES,
    SynthCity,
    SynthError,
    SynthSpec,
    generate_city,
    parse_size,
    parse_years,
    render_window,
)
from slumwatch.catalogs.synth.acquisition import acquisition
from slumwatch.catalogs.synth.shapes import footprint, footprint_coords, footprints

TINY_TRANSFORM = Affine(0.6, 0.0, 270_000.0, 0.0, -0.6, 2_110_000.0)
FAST_YEARS = (2020, 2021)
SLOW_YEARS = (2015, 2016, 2017, 2018, 2019)
MIN_MASK_IOU = 0.97
#: Formal and informal roofs must differ by less than this many pooled standard deviations per band.
MAX_COLOUR_SEPARATION = 0.5


# -- fixtures and helpers ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_city(tmp_path_factory: pytest.TempPathFactory) -> SynthCity:
    """The default tiny city: 1024 x 1024 px at 0.6 m, 2014-2024, seed 7."""
    return generate_city(SynthSpec.from_size("tiny", seed=7), out=tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_buildings(tiny_city: SynthCity) -> gpd.GeoDataFrame:
    return gpd.read_parquet(tiny_city.buildings)


@pytest.fixture(scope="session")
def tiny_slums(tiny_city: SynthCity) -> gpd.GeoDataFrame:
    return gpd.read_parquet(tiny_city.slums)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _existing(buildings: gpd.GeoDataFrame, year: int) -> gpd.GeoDataFrame:
    removed = buildings["year_removed"]
    alive = (buildings["year_built"] <= year) & (removed.isna() | (removed > year))
    return buildings[alive]


def _slum_union(slums: gpd.GeoDataFrame, year: int) -> Any:
    return shapely.union_all(slums[slums["year"] == year].geometry.to_numpy())


# -- spec ------------------------------------------------------------------------------------------------
def test_presets_and_explicit_sizes() -> None:
    assert parse_size("tiny") == ("tiny", 1024, 1024)
    assert SynthSpec.from_size("small").width == 4096
    assert SynthSpec.from_size("city").height == 20_000
    assert SynthSpec.from_size("metro").width == 40_000
    odd = SynthSpec.from_size("1000x777", seed=3)
    assert (odd.name, odd.width, odd.height, odd.seed) == ("1000x777", 1000, 777, 3)
    assert odd.collection_id == "synth-1000x777-s3"
    assert SynthSpec().years == DEFAULT_YEARS == tuple(range(2014, 2025))
    assert parse_years("2014-2016,2020") == (2014, 2015, 2016, 2020)
    assert parse_years("2019") == (2019,)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: SynthSpec.from_size("huge"), "unknown size"),
        (lambda: SynthSpec.from_size("10x10"), "width"),
        (lambda: SynthSpec(resolution=3.0), "resolution"),
        (lambda: SynthSpec(resolution=0.1), "resolution"),
        (lambda: SynthSpec(years=(2016, 2015)), "increasing"),
        (lambda: SynthSpec(years=()), "non-empty"),
        (lambda: SynthSpec(years=(1800,)), "outside"),
        (lambda: parse_years("2024-2014"), "backwards"),
        (lambda: parse_years("twenty"), "malformed"),
        (lambda: SynthSpec(bands="rgbx"), "bands"),  # type: ignore[arg-type]
        (lambda: SynthSpec(dtype="float32"), "dtype"),  # type: ignore[arg-type]
        (lambda: SynthSpec(epsg=4326), "UTM"),
        (lambda: SynthSpec(seed=-1), "seed"),
        (lambda: SynthSpec.from_size("tiny", colour="red"), "colour"),
    ],
)
def test_bad_parameters_raise_typed_errors(call: Any, match: str) -> None:
    with pytest.raises(SynthError, match=match) as info:
        call()
    assert isinstance(info.value, ValueError)


def test_spec_is_frozen() -> None:
    spec = SynthSpec()
    with pytest.raises(AttributeError):
        spec.seed = 8  # type: ignore[misc]


# -- shapes ----------------------------------------------------------------------------------------------
def test_footprint_shapes() -> None:
    n_vertices = {"R": 4, "L": 6, "U": 8, "T": 8, "I": 12}
    for shape_type in SHAPE_TYPES:
        coords = footprint_coords(shape_type, length=8.0, width=5.0, arm=0.4)
        assert len(coords) == n_vertices[shape_type]
        poly = footprint(shape_type, cx=10.0, cy=-3.0, length=8.0, width=5.0, angle=0.7, arm=0.4)
        assert poly.is_valid
        assert poly.area <= 40.0 + 1e-9
        assert (poly.area == pytest.approx(40.0)) == (shape_type == "R")
        batch = footprints(
            [shape_type] * 2, cx=[10.0, 0.0], cy=[-3.0, 0.0], length=8.0, width=5.0, angle=0.7, arm=0.4
        )
        assert shapely.equals_exact(batch[0], poly, tolerance=1e-9)
    with pytest.raises(ValueError, match="arm"):
        footprint_coords("L", length=5.0, width=5.0, arm=0.9)


# -- determinism -----------------------------------------------------------------------------------------
def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    spec = SynthSpec.from_size("256x192", seed=7, years=(2020, 2021))
    first = generate_city(spec, out=tmp_path / "a")
    second = generate_city(spec, out=tmp_path / "b")
    digests = _digest(first.root)
    assert digests == _digest(second.root)
    assert {"imagery/2020.tif", "labels/masks/2021.tif", "labels/buildings.parquet", "truth.json"} <= set(
        digests
    )
    other = generate_city(SynthSpec.from_size("256x192", seed=8, years=(2020, 2021)), out=tmp_path / "c")
    assert not np.array_equal(_read(first.images[2020]), _read(other.images[2020]))


# -- grid, dtypes, bands ---------------------------------------------------------------------------------
def test_grid_crs_and_cog_layout(tiny_city: SynthCity) -> None:
    assert tiny_city.spec.transform == TINY_TRANSFORM
    for year in tiny_city.spec.years:
        for path, count, nodata in (
            (tiny_city.images[year], 3, 0),
            (tiny_city.cloud_masks[year], 1, 255),
            (tiny_city.label_masks[year], 1, 255),
        ):
            with rasterio.open(path) as src:
                assert src.crs.to_epsg() == 32643
                assert src.transform.almost_equals(TINY_TRANSFORM)
                assert src.res == (0.6, 0.6)
                assert (src.width, src.height, src.count) == (1024, 1024, count)
                assert src.dtypes[0] == "uint8"
                assert src.nodata == nodata
                assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    truth = tiny_city.truth
    assert (truth["crs"], truth["resolution"], truth["width"], truth["height"]) == (
        "EPSG:32643",
        0.6,
        1024,
        1024,
    )
    assert truth["years"] == list(DEFAULT_YEARS)


def test_uint16_rgbn_variant(tmp_path: Path) -> None:
    spec = SynthSpec.from_size("384x320", seed=11, years=(2019, 2021), bands="rgbn", dtype="uint16")
    city = generate_city(spec, out=tmp_path)
    for year in spec.years:
        image = _read(city.images[year])
        label = _read(city.label_masks[year])[0]
        assert image.dtype == np.uint16 and image.shape == (4, 320, 384)
        inside = label != 255
        assert (image[:, inside] >= 16).all(), "0 is nodata: never 0 inside the scene"
        assert (image[:, ~inside] == 0).all()
        assert image.max() // 16 <= 4095 and image.max() > 255
        with rasterio.open(city.images[year]) as src:
            assert src.descriptions == ("red", "green", "blue", "nir")
        # NIR is bright on vegetation: it must not just copy a visible band
        assert not np.array_equal(image[3], image[0])
    item = pystac.Item.from_file(city.item_path(2019))
    names = [b["common_name"] for b in item.assets["image"].extra_fields["eo:bands"]]
    assert names == ["red", "green", "blue", "nir"]


def test_coarser_resolution_works(tmp_path: Path) -> None:
    spec = SynthSpec.from_size("200x150", seed=5, years=(2021,), resolution=1.0)
    city = generate_city(spec, out=tmp_path)
    with rasterio.open(city.images[2021]) as src:
        assert src.res == (1.0, 1.0)
        assert src.read().shape == (3, 150, 200)
    assert city.truth["building_counts"]["2021"]["total"] > 0


# -- windows ---------------------------------------------------------------------------------------------
def test_window_render_equals_crop_of_whole_scene() -> None:
    spec = SynthSpec.from_size("301x263", seed=7, years=tuple(range(2014, 2025)))
    cloudy = next(y for y in spec.years if acquisition(spec, y).cloud_amount > 0)
    edged = next(y for y in spec.years if acquisition(spec, y).swath)
    for year in sorted({cloudy, edged}):
        whole = render_window(spec, year=year, row_off=0, col_off=0, height=spec.height, width=spec.width)
        for r0, c0, h, w in ((37, 55, 101, 77), (200, 250, 63, 51), (0, 0, 64, 64)):
            part = render_window(spec, year=year, row_off=r0, col_off=c0, height=h, width=w)
            np.testing.assert_array_equal(part.image, whole.image[:, r0 : r0 + h, c0 : c0 + w])
            np.testing.assert_array_equal(part.cloud, whole.cloud[r0 : r0 + h, c0 : c0 + w])
            np.testing.assert_array_equal(part.label, whole.label[r0 : r0 + h, c0 : c0 + w])


def test_written_windows_equal_whole_scene_render(tmp_path: Path) -> None:
    spec = SynthSpec.from_size("200x150", seed=9, years=(2020,), window_size=64)
    city = generate_city(spec, out=tmp_path)
    whole = render_window(spec, year=2020, row_off=0, col_off=0, height=150, width=200)
    np.testing.assert_array_equal(_read(city.images[2020]), whole.image)
    np.testing.assert_array_equal(_read(city.label_masks[2020])[0], whole.label)
    np.testing.assert_array_equal(_read(city.cloud_masks[2020])[0], whole.cloud)


# -- nodata and clouds -----------------------------------------------------------------------------------
def test_nodata_wedges_at_borders_are_255_in_masks(tiny_city: SynthCity) -> None:
    with_nodata = 0
    for year in tiny_city.spec.years:
        image = _read(tiny_city.images[year])
        label = _read(tiny_city.label_masks[year])[0]
        cloud = _read(tiny_city.cloud_masks[year])[0]
        nodata = (image == 0).all(axis=0)
        assert ((image == 0).any(axis=0) == nodata).all(), "a pixel is nodata in all bands or in none"
        np.testing.assert_array_equal(label == 255, nodata)
        np.testing.assert_array_equal(cloud == 255, nodata)
        assert tiny_city.truth["valid_fraction"][str(year)] == pytest.approx(1.0 - nodata.mean(), abs=1e-6)
        if nodata.any():
            with_nodata += 1
            border = np.concatenate([nodata[0], nodata[-1], nodata[:, 0], nodata[:, -1]])
            assert border.any(), "nodata wedges run along the scene edges"
            assert not nodata[400:624, 400:624].any(), "the centre is always imaged"
    assert 0 < with_nodata < len(tiny_city.spec.years)


def test_cloud_mask_consistent_with_pixels_and_stac(tiny_city: SynthCity) -> None:
    cloudy_years = 0
    for year in tiny_city.spec.years:
        image = _read(tiny_city.images[year]).astype(np.float64)
        cloud = _read(tiny_city.cloud_masks[year])[0]
        valid = cloud != 255
        fraction = (cloud == 1).sum() / valid.sum()
        assert tiny_city.truth["cloud_fraction"][str(year)] == pytest.approx(fraction, abs=1e-6)
        item = pystac.Item.from_file(tiny_city.item_path(year))
        assert item.properties["eo:cloud_cover"] == pytest.approx(100 * fraction, abs=1e-3)
        if (cloud == 1).sum() > 1000:
            cloudy_years += 1
            bright = image.mean(axis=0)
            clouds, clear = cloud == 1, cloud == 0
            assert bright[clouds].mean() > bright[clear].mean() + 40
            spread = image.max(axis=0) - image.min(axis=0)
            assert np.median(spread[clouds]) < 25, "clouds are white-grey"
    assert 0 < cloudy_years < len(tiny_city.spec.years)


# -- growth, clearing, buildings -------------------------------------------------------------------------
def test_slum_area_grows_faster_in_2020_2021(tiny_city: SynthCity, tiny_slums: gpd.GeoDataFrame) -> None:
    area = {int(y): a for y, a in tiny_city.truth["slum_area_m2"].items()}
    assert area[2024] > area[2014] > 0
    slow_rate = (area[2019] - area[2014]) / len(SLOW_YEARS)
    fast_rate = (area[2021] - area[2019]) / len(FAST_YEARS)
    assert fast_rate > slow_rate
    assert fast_rate > 0
    for year, value in area.items():
        assert tiny_slums[tiny_slums["year"] == year].geometry.area.sum() == pytest.approx(value, rel=1e-6)
        mask_area = tiny_city.truth["slum_mask_area_m2"][str(year)]
        assert mask_area == pytest.approx(value, rel=0.01), "pixel area agrees with polygon area"
        assert tiny_city.truth["slum_mask_valid_area_m2"][str(year)] <= mask_area + 1e-6


def test_some_slums_are_cleared(
    tiny_city: SynthCity, tiny_buildings: gpd.GeoDataFrame, tiny_slums: gpd.GeoDataFrame
) -> None:
    cleared = [
        s
        for s in tiny_city.truth["slums"]
        if s["clear_year"] is not None and s["clear_year"] in DEFAULT_YEARS
    ]
    assert cleared
    for slum in cleared:
        rows = tiny_slums[tiny_slums["slum_id"] == slum["slum_id"]]
        assert rows["year"].max() == slum["clear_year"] - 1
        gone = tiny_buildings[tiny_buildings["slum_id"] == slum["slum_id"]]
        assert len(gone) and (gone["year_removed"] == slum["clear_year"]).all()
        assert gone["informal"].all()
    removed = tiny_buildings[tiny_buildings["year_removed"].notna()]
    assert removed["informal"].all()
    new_formal = tiny_buildings[~tiny_buildings["informal"] & (tiny_buildings["year_built"] > 2014)]
    assert len(new_formal) > 0, "not every change is slum growth"


def test_buildings_shapes_sizes_and_informality(
    tiny_buildings: gpd.GeoDataFrame, tiny_slums: gpd.GeoDataFrame
) -> None:
    assert set(tiny_buildings["shape_type"]) == set(SHAPE_TYPES)
    informal = tiny_buildings[tiny_buildings["informal"]]
    formal = tiny_buildings[~tiny_buildings["informal"]]
    assert set(informal["shape_type"]) == set(SHAPE_TYPES)
    assert informal["slum_id"].notna().all() and formal["slum_id"].isna().all()
    assert tiny_buildings["building_id"].is_unique
    assert tiny_buildings.geometry.is_valid.all()
    side = np.sqrt(informal.geometry.area)
    assert 2.5 < side.median() < 7.0 and np.sqrt(formal.geometry.area).median() > 12.0
    assert tiny_buildings.crs.to_epsg() == 32643
    for year in (2014, 2019, 2021, 2024):
        alive = _existing(tiny_buildings, year)
        slum_area = _slum_union(tiny_slums, year)
        scene = box(*rasterio.transform.array_bounds(1024, 1024, TINY_TRANSFORM))
        inside_scene = alive[alive.geometry.within(scene)]
        inf = inside_scene[inside_scene["informal"]]
        frm = inside_scene[~inside_scene["informal"]]
        assert len(inf) > 100
        outside = shapely.area(shapely.difference(inf.geometry.to_numpy(), slum_area))
        assert (outside < 1e-6 * inf.geometry.area.to_numpy() + 1e-6).all(), "informal roofs lie inside slums"
        overlap = shapely.area(shapely.intersection(frm.geometry.to_numpy(), slum_area))
        assert (overlap < 1e-6).all(), "formal buildings are never inside a slum"


def test_building_counts_in_truth(tiny_city: SynthCity, tiny_buildings: gpd.GeoDataFrame) -> None:
    for year in tiny_city.spec.years:
        alive = _existing(tiny_buildings, year)
        counts = tiny_city.truth["building_counts"][str(year)]
        assert counts["total"] == len(alive)
        assert counts["informal"] == int(alive["informal"].sum())


def test_mask_agrees_with_polygons(tiny_city: SynthCity, tiny_slums: gpd.GeoDataFrame) -> None:
    for year in (2014, 2018, 2021, 2024):
        label = _read(tiny_city.label_masks[year])[0]
        valid = [
            shape(g) for g, v in shapes((label != 255).astype(np.uint8), transform=TINY_TRANSFORM) if v == 1
        ]
        slum_px = [
            shape(g) for g, v in shapes((label == 1).astype(np.uint8), transform=TINY_TRANSFORM) if v == 1
        ]
        truth = shapely.intersection(_slum_union(tiny_slums, year), shapely.union_all(valid))
        raster = shapely.union_all(slum_px)
        iou = shapely.intersection(truth, raster).area / shapely.union(truth, raster).area
        assert iou > MIN_MASK_IOU, f"{year}: IoU {iou:.4f}"


def test_colour_alone_does_not_separate_slum_roofs(
    tiny_city: SynthCity, tiny_buildings: gpd.GeoDataFrame
) -> None:
    year = 2021
    image = _read(tiny_city.images[year]).astype(np.float64)
    cloud = _read(tiny_city.cloud_masks[year])[0]
    alive = _existing(tiny_buildings, year)
    classes = rasterize(
        zip(alive.geometry, np.where(alive["informal"], 2, 1), strict=True),
        out_shape=cloud.shape,
        transform=TINY_TRANSFORM,
        fill=0,
        dtype="uint8",
    )
    clear = cloud == 0
    formal = image[:, (classes == 1) & clear]
    informal = image[:, (classes == 2) & clear]
    assert formal.shape[1] > 10_000 and informal.shape[1] > 10_000
    pooled = np.sqrt((formal.var(axis=1) + informal.var(axis=1)) / 2)
    gap = np.abs(formal.mean(axis=1) - informal.mean(axis=1))
    assert (gap < MAX_COLOUR_SEPARATION * pooled).all(), f"band gaps {gap} vs spread {pooled}"


# -- STAC ------------------------------------------------------------------------------------------------
def test_stac_catalog_reads_back_with_items_and_assets(tiny_city: SynthCity) -> None:
    catalog = pystac.Catalog.from_file(tiny_city.catalog)
    collections = list(catalog.get_collections())
    assert [c.id for c in collections] == ["synth-tiny-s7"]
    items = sorted(collections[0].get_items(), key=lambda i: i.id)
    assert [i.id for i in items] == [f"synth-tiny-s7-{y}" for y in DEFAULT_YEARS]
    for item, year in zip(items, DEFAULT_YEARS, strict=True):
        assert item.datetime is not None and item.datetime.isoformat() == f"{year}-06-15T10:30:00+00:00"
        assert item.properties["proj:code"] == "EPSG:32643"
        assert item.properties["proj:shape"] == [1024, 1024]
        assert item.properties["proj:transform"] == list(TINY_TRANSFORM)[:6]
        assert item.properties["gsd"] == 0.6
        assert 0.0 <= item.properties["eo:cloud_cover"] <= 100.0
        west, south, east, north = item.bbox or []
        assert 72.5 < west < east < 73.2 and 18.8 < south < north < 19.3
        expected = {
            "image": tiny_city.images[year],
            "cloud_mask": tiny_city.cloud_masks[year],
            "label_mask": tiny_city.label_masks[year],
        }
        assert set(item.assets) == set(expected)
        for key, path in expected.items():
            asset = item.assets[key]
            assert not Path(asset.href).is_absolute(), "self-contained: relative hrefs"
            assert Path(asset.get_absolute_href() or "").resolve() == path.resolve()
        assert item.assets["image"].roles == ["data"]
        assert item.assets["cloud_mask"].roles == ["cloud"]
        assert item.assets["label_mask"].roles == ["labels"]
    for path in tiny_city.root.rglob("*.json"):
        if path.name != "truth.json":
            assert str(tiny_city.root) not in path.read_text(), f"{path} holds an absolute path"


def _check_extension_fields(item: dict[str, Any]) -> None:
    """Structural check of the eo v1.1.0 and proj v2.0.0 fields (their schemas need the network)."""
    assert "https://stac-extensions.github.io/eo/v1.1.0/schema.json" in item["stac_extensions"]
    assert "https://stac-extensions.github.io/projection/v2.0.0/schema.json" in item["stac_extensions"]
    props = item["properties"]
    assert isinstance(props["proj:code"], str) and props["proj:code"].startswith("EPSG:326")
    assert len(props["proj:shape"]) == 2 and all(isinstance(v, int) and v > 0 for v in props["proj:shape"])
    assert len(props["proj:transform"]) in (6, 9) and all(
        isinstance(v, float | int) for v in props["proj:transform"]
    )
    assert isinstance(props["eo:cloud_cover"], float | int) and 0 <= props["eo:cloud_cover"] <= 100
    bands = item["assets"]["image"]["eo:bands"]
    assert bands and all(isinstance(b["name"], str) for b in bands)
    assert {b["common_name"] for b in bands} <= {"red", "green", "blue", "nir"}
    assert all(0 < b["center_wavelength"] < 2 and 0 < b["full_width_half_max"] < 1 for b in bands)


def test_stac_objects_are_schema_valid_offline(tiny_city: SynthCity) -> None:
    """Core STAC 1.1 schemas ship with pystac, so they validate offline; the extension fields are
    checked structurally (their schemas would have to be fetched)."""
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    validator = JsonSchemaSTACValidator()
    catalog = json.loads(tiny_city.catalog.read_text())
    validator.validate_core(catalog, pystac.STACObjectType.CATALOG, catalog["stac_version"])
    collection_path = tiny_city.root / tiny_city.collection_id / "collection.json"
    collection = json.loads(collection_path.read_text())
    validator.validate_core(collection, pystac.STACObjectType.COLLECTION, collection["stac_version"])
    for year in tiny_city.spec.years:
        item = json.loads(tiny_city.item_path(year).read_text())
        validator.validate_core(item, pystac.STACObjectType.ITEM, item["stac_version"])
        _check_extension_fields(item)
    broken = json.loads(tiny_city.item_path(2014).read_text())
    broken["bbox"] = "nowhere"
    with pytest.raises(pystac.STACValidationError):
        validator.validate_core(broken, pystac.STACObjectType.ITEM, broken["stac_version"])


@pytest.mark.integration
def test_stac_validate_all_when_schemas_can_be_fetched(tiny_city: SynthCity) -> None:
    from pystac.validation.stac_validator import GetSchemaError

    catalog = pystac.Catalog.from_file(tiny_city.catalog)
    try:
        n = catalog.validate_all()
    except GetSchemaError as exc:
        pytest.skip(f"extension schemas cannot be fetched (offline): {exc}")
    assert n == len(DEFAULT_YEARS)


# -- CLI -------------------------------------------------------------------------------------------------
def test_cli_synth(tmp_path: Path) -> None:
    from slumwatch.cli import app

    runner = CliRunner()
    help_result = runner.invoke(app, ["synth", "--help"])
    assert help_result.exit_code == 0
    for option in ("--size", "--seed", "--out", "--bands", "--dtype", "--years"):
        assert option in help_result.output
    result = runner.invoke(
        app,
        [
            "synth",
            "--size",
            "128x96",
            "--seed",
            "3",
            "--years",
            "2020,2021",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "catalog.json" in result.output
    assert (tmp_path / "catalog.json").is_file() and (tmp_path / "imagery" / "2021.tif").is_file()
    bad = runner.invoke(app, ["synth", "--size", "enormous", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown size" in bad.output
