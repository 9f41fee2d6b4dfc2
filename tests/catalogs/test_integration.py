"""End to end over loopback HTTP: a real STAC API (``rustac serve``) behind a fault-injecting proxy,
COG assets served by a Range-capable file server, the ingest flow, and the real RGB.byte.tif scene."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import pytest
from catalog_fixtures import native_grid, scene

from slumwatch.catalogs.cube import CubeRef, build_cube, cube_summary, open_cube
from slumwatch.catalogs.errors import AssetNotFoundError, EmptySearchError, StacApiError, TruncatedAssetError
from slumwatch.catalogs.search import HttpPolicy, search_items
from slumwatch.catalogs.testing import FaultPlan, LoopbackServer, make_item, scene_pixels
from slumwatch.catalogs.tiling import TileSpec

pytestmark = pytest.mark.integration

RUSTAC = Path(sys.executable).with_name("rustac")
FAST = HttpPolicy(retries=3, backoff=0.01, connect_timeout=2, read_timeout=5)
YEARS = (2015, 2016, 2017)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    api: str
    files: LoopbackServer
    proxy: LoopbackServer
    items: list[pystac.Item]
    root: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not RUSTAC.exists():
        pytest.skip(f"rustac CLI not found at {RUSTAC}")
    root = tmp_path_factory.mktemp("api")
    with LoopbackServer(root=root) as files, LoopbackServer(upstream="http://unset") as proxy:
        items = [
            make_item(scene(y, seed=y, cloud_fraction=0.1 * i), root=root, href_base=files.url)
            for i, y in enumerate(YEARS)
        ]
        for it in items:
            it.collection_id = "fixture"
        collection = {
            "type": "Collection",
            "stac_version": "1.1.0",
            "id": "fixture",
            "description": "fixture",
            "license": "other",
            "links": [],
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
        }
        (root / "collection.json").write_text(json.dumps(collection))
        (root / "items.json").write_text(
            json.dumps({"type": "FeatureCollection", "features": [it.to_dict() for it in items]})
        )
        port = _free_port()
        proxy.upstream = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [
                str(RUSTAC),
                "serve",
                "--addr",
                proxy.url,
                "--bind",
                f"127.0.0.1:{port}",
                str(root / "collection.json"),
                str(root / "items.json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        pytest.fail(
                            f"rustac serve did not start: {proc.stdout.read() if proc.stdout else ''}"
                        )
                    time.sleep(0.1)
            yield Stack(api=proxy.url, files=files, proxy=proxy, items=items, root=root)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture()
def plan(stack: Stack) -> Iterator[FaultPlan]:
    fresh = FaultPlan()
    stack.proxy.plan = fresh
    stack.files.plan = fresh
    yield fresh
    stack.proxy.plan = FaultPlan()
    stack.files.plan = FaultPlan()


def _bbox(stack: Stack) -> tuple[float, float, float, float]:
    w, s, e, n = stack.items[0].bbox or []
    return (w, s, e, n)


def test_api_search_with_pagination(stack: Stack, plan: FaultPlan) -> None:
    got = search_items(catalog=stack.api, bbox=_bbox(stack), policy=HttpPolicy(page_size=1))
    assert [it.id for it in got] == [f"scene-{y}" for y in YEARS]
    assert got[0].assets["image"].href.startswith(stack.files.url)
    assert sum(1 for m, p, s in plan.requests if "search" in p) >= 3  # one page per item
    cloudy = search_items(catalog=stack.api, max_cloud_cover=15)  # no filter ext: client-side
    assert [it.id for it in cloudy] == ["scene-2015", "scene-2016"]
    assert [it.id for it in search_items(catalog=stack.api, datetime="2016/2016")] == ["scene-2016"]


def test_retries_5xx_and_429_then_success(stack: Stack, plan: FaultPlan) -> None:
    plan.add("/search", "status:500", "status:503", "status:429")
    t0 = time.monotonic()
    got = search_items(catalog=stack.api, bbox=_bbox(stack), policy=FAST)
    assert len(got) == 3
    statuses = [s for _, p, s in plan.requests if p.startswith("/search")]
    assert statuses[:4] == [500, 503, 429, 200]
    assert time.monotonic() - t0 >= 0.9  # Retry-After: 1 was honoured


def test_exhausted_retries_are_loud(stack: Stack, plan: FaultPlan) -> None:
    plan.add("/search", "status:503", forever=True)
    with pytest.raises(StacApiError, match="503") as info:
        search_items(catalog=stack.api, policy=HttpPolicy(retries=2, backoff=0.01))
    assert info.value.status_code == 503
    assert sum(1 for _, p, _ in plan.requests if p.startswith("/search")) == 3


def test_hang_past_timeout_is_retried_then_loud(stack: Stack, plan: FaultPlan) -> None:
    policy = HttpPolicy(retries=1, backoff=0.01, read_timeout=0.5)
    plan.add("/search", "hang:1.5")
    assert len(search_items(catalog=stack.api, policy=policy)) == 3  # one hang, then a fresh try
    plan.add("/search", "hang:1.5", forever=True)
    t0 = time.monotonic()
    with pytest.raises(StacApiError, match=r"(?i)timed? ?out"):
        search_items(catalog=stack.api, policy=policy)
    assert time.monotonic() - t0 < 10


def test_looping_next_link_is_refused(stack: Stack, plan: FaultPlan) -> None:
    plan.add("/search", "loop", forever=True)
    with pytest.raises(StacApiError, match="looping"):
        search_items(catalog=stack.api, policy=FAST)


def test_auth_from_env_is_sent_never_logged(
    stack: Stack, plan: FaultPlan, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLUMWATCH_STAC_TOKEN", "tok-SECRET-42")
    monkeypatch.setenv("SLUMWATCH_STAC_HEADERS", '{"X-Api-Key": "key-SECRET-7"}')
    with caplog.at_level(logging.DEBUG):
        search_items(catalog=stack.api, policy=FAST)
    sent = [h for (_, p, _), h in zip(plan.requests, plan.headers, strict=True) if p.startswith("/search")]
    assert sent and all(h.get("Authorization") == "Bearer tok-SECRET-42" for h in sent)
    assert all(h.get("X-Api-Key") == "key-SECRET-7" for h in sent)
    assert "SECRET" not in caplog.text


def test_aoi_outside_every_item(stack: Stack, plan: FaultPlan) -> None:
    with pytest.raises(EmptySearchError):
        search_items(catalog=stack.api, bbox=(3.1, 6.4, 3.2, 6.5))


def _cube(stack: Stack, out: Path, **kw: object) -> CubeRef:
    items = search_items(catalog=stack.api, policy=FAST)
    # a distinct URL per test: GDAL caches /vsicurl/ answers for the whole process
    for it in items:
        for asset in it.assets.values():
            asset.href = f"{asset.href}?case={out.parent.name}"
    return build_cube(
        items=items,
        out=out,
        grid=native_grid(resampling="nearest"),
        tile=TileSpec(32),
        window_tiles=2,
        progress=False,
        **kw,
    )  # type: ignore[arg-type]


def test_cube_over_http_with_flaky_assets(stack: Stack, plan: FaultPlan, tmp_path: Path) -> None:
    plan.add("/imagery/scene-2016.tif", "status:503", "status:500")
    ds = open_cube(_cube(stack, tmp_path / "c.zarr"))
    img, cloud = scene_pixels(scene(2016, seed=2016, cloud_fraction=0.1))
    clear = cloud == 0
    np.testing.assert_array_equal(ds["imagery"].sel(time="2016").values[0][:, clear], img[:, clear])
    assert any(s == 503 for *_, s in plan.requests)


def test_missing_asset_over_http_is_loud(stack: Stack, plan: FaultPlan, tmp_path: Path) -> None:
    plan.add("/imagery/scene-2017.tif", "status:404", forever=True)
    with pytest.raises(AssetNotFoundError, match="scene-2017"):
        _cube(stack, tmp_path / "c.zarr")


def test_truncated_cog_over_http_is_loud(stack: Stack, plan: FaultPlan, tmp_path: Path) -> None:
    plan.add("/imagery/scene-2015.tif", "truncate:0.6", forever=True)
    with pytest.raises(TruncatedAssetError, match="scene-2015"):
        _cube(stack, tmp_path / "c.zarr")


def test_ingest_flow_against_stac_api(
    prefect_harness: None, stack: Stack, plan: FaultPlan, tmp_path: Path
) -> None:
    from slumwatch.pipelines.ingest import IngestParams, ingest

    plan.add("/search", "status:502")
    result = ingest(
        IngestParams(
            catalog=stack.api,
            out=tmp_path / "api.zarr",
            bbox=_bbox(stack),
            first_year=2015,
            last_year=2017,
            tile_size=64,
            resolution=1.2,
        )
    )
    assert [r.year for r in result.years] == list(YEARS)
    ds = open_cube(CubeRef(tmp_path / "api.zarr"))
    assert ds.rio.crs.to_epsg() == 32643 and ds["imagery"].dtype == np.uint8


def test_real_landsat_scene_through_ingest(prefect_harness: None, shared_data: Path, tmp_path: Path) -> None:
    """The real RGB.byte.tif (EPSG:32618, ~300 m, nodata 0 borders) wrapped in a STAC item."""
    import rasterio
    from rasterio.warp import transform_bounds

    from slumwatch.catalogs.testing import make_static_catalog  # noqa: F401  (fixture tools stay importable)
    from slumwatch.pipelines.ingest import IngestParams, ingest

    src_path = tmp_path / "cat" / "RGB.byte.tif"
    src_path.parent.mkdir(parents=True)
    shutil.copy(shared_data / "RGB.byte.tif", src_path)
    with rasterio.open(src_path) as src:
        w84 = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        props = {
            "proj:code": f"EPSG:{src.crs.to_epsg()}",
            "proj:shape": [src.height, src.width],
            "proj:transform": list(src.transform)[:6],
            "gsd": src.res[0],
        }
    import datetime as dt

    item = pystac.Item(
        "rgb-byte",
        {
            "type": "Polygon",
            "coordinates": [
                [[w84[0], w84[1]], [w84[2], w84[1]], [w84[2], w84[3]], [w84[0], w84[3]], [w84[0], w84[1]]]
            ],
        },
        list(w84),
        dt.datetime(2019, 6, 1, tzinfo=dt.timezone.utc),
        props,
    )
    item.add_asset("image", pystac.Asset(str(src_path), media_type=pystac.MediaType.GEOTIFF, roles=["data"]))
    catalog = pystac.Catalog("real", "real scene")
    catalog.add_item(item)
    catalog.normalize_and_save(str(tmp_path / "cat"), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    result = ingest(
        IngestParams(
            catalog=str(tmp_path / "cat" / "catalog.json"),
            out=tmp_path / "real.zarr",
            first_year=2019,
            last_year=2019,
            resolution=300.0,
            tile_size=256,
        )
    )
    ds = open_cube(CubeRef(tmp_path / "real.zarr"))
    assert ds.rio.crs.to_epsg() == 32618
    assert ds["imagery"].dtype == np.uint8 and ds.sizes["band"] == 3
    frac = result.years[0].valid_fraction
    assert 0.3 < frac < 0.95, frac  # nodata borders are not valid
    assert cube_summary(CubeRef(tmp_path / "real.zarr"))[0].scenes == 1
