"""search_items over static catalogs (the API path is in test_integration.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slumwatch.catalogs.errors import EmptySearchError, SearchError
from slumwatch.catalogs.search import (
    HttpPolicy,
    auth_headers_from_env,
    city_bbox,
    list_cities,
    load_aoi,
    search_items,
)


def test_static_catalog_returns_all_items_sorted(three_year_catalog: Path) -> None:
    items = search_items(catalog=three_year_catalog)
    assert [it.id for it in items] == ["scene-2015", "clear-2016", "cloudy-2016", "scene-2017"]


def test_static_catalog_folder_and_str_accepted(three_year_catalog: Path) -> None:
    assert len(search_items(catalog=three_year_catalog.parent)) == 4
    assert len(search_items(catalog=str(three_year_catalog))) == 4


def test_datetime_filter(three_year_catalog: Path) -> None:
    items = search_items(catalog=three_year_catalog, datetime="2016-01-01/2016-12-31")
    assert {it.id for it in items} == {"clear-2016", "cloudy-2016"}
    assert [it.id for it in search_items(catalog=three_year_catalog, datetime="2017/..")] == ["scene-2017"]


def test_cloud_filter(three_year_catalog: Path) -> None:
    items = search_items(catalog=three_year_catalog, max_cloud_cover=10)
    assert {it.id for it in items} == {"clear-2016", "scene-2017"}


def test_bbox_and_intersects(three_year_catalog: Path) -> None:
    items = search_items(catalog=three_year_catalog)
    w, s, e, n = items[0].bbox
    inside = (w + 1e-5, s + 1e-5, e - 1e-5, n - 1e-5)
    assert len(search_items(catalog=three_year_catalog, bbox=inside)) == 4
    geom = {"type": "Point", "coordinates": [(w + e) / 2, (s + n) / 2]}
    assert len(search_items(catalog=three_year_catalog, intersects=geom)) == 4
    with pytest.raises(EmptySearchError, match="no item"):
        search_items(catalog=three_year_catalog, bbox=(10.0, 10.0, 10.1, 10.1))
    assert search_items(catalog=three_year_catalog, bbox=(10.0, 10.0, 10.1, 10.1), allow_empty=True) == []


def test_collections_and_limit(three_year_catalog: Path) -> None:
    assert len(search_items(catalog=three_year_catalog, collections=["fixture"], limit=2)) == 2
    assert search_items(catalog=three_year_catalog, collections=["other"], allow_empty=True) == []


def test_bad_inputs_are_loud(tmp_path: Path, three_year_catalog: Path) -> None:
    with pytest.raises(SearchError, match="does not exist"):
        search_items(catalog=tmp_path / "nope" / "catalog.json")
    with pytest.raises(SearchError, match="not a WGS84"):
        search_items(catalog=three_year_catalog, bbox=(500000.0, 0.0, 500100.0, 100.0))
    with pytest.raises(SearchError, match="datetime"):
        search_items(catalog=three_year_catalog, datetime="last tuesday")


def test_cities_table() -> None:
    cities = list_cities()
    assert len(cities) >= 12
    names = {c.name for c in cities}
    assert {
        "Mumbai",
        "Nairobi",
        "Lagos",
        "Dhaka",
        "Rio de Janeiro",
        "Karachi",
        "Manila",
        "Cape Town",
    } <= names
    for c in cities:
        w, s, e, n = c.bbox
        assert -180 <= w < e <= 180 and -90 <= s < n <= 90, c
    assert city_bbox("rio-de-janeiro") == city_bbox("Rio de Janeiro")
    with pytest.raises(SearchError, match="known cities"):
        city_bbox("Atlantis")


def test_load_aoi_reprojects_to_wgs84(tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely.geometry as sg

    gdf = gpd.GeoDataFrame(geometry=[sg.box(500000, 2100000, 501000, 2101000)], crs="EPSG:32643")
    path = tmp_path / "aoi.geojson"
    gdf.to_file(path, driver="GeoJSON")
    geom = load_aoi(path)
    minx, miny, _, _ = sg.shape(geom).bounds
    assert 74.9 < minx < 75.1 and 18.9 < miny < 19.1


def test_auth_headers_from_env() -> None:
    env = {"SLUMWATCH_STAC_TOKEN": "s3cret", "SLUMWATCH_STAC_HEADERS": '{"X-Api-Key": "k"}'}
    assert auth_headers_from_env(env) == {"X-Api-Key": "k", "Authorization": "Bearer s3cret"}
    assert auth_headers_from_env({}) == {}
    with pytest.raises(SearchError) as info:
        auth_headers_from_env({"SLUMWATCH_STAC_HEADERS": "{not json s3cret"})
    assert "s3cret" not in str(info.value)


def test_http_policy_defaults_are_bounded() -> None:
    p = HttpPolicy()
    assert 0 < p.retries <= 10 and p.read_timeout > 0 and p.max_pages > 0
