"""Stratified seeded splits, nested subsets, hashing, and the SegSlum layout."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely.geometry as sg
from catalog_fixtures import NATIVE_BBOX, RES, native_grid, scene

from slumwatch.catalogs.cube import CubeRef, build_cube
from slumwatch.catalogs.errors import SplitError
from slumwatch.catalogs.labels import rasterize_labels
from slumwatch.catalogs.search import search_items
from slumwatch.catalogs.segslum import export_segslum, load_sample, parse_id, read_segslum
from slumwatch.catalogs.splits import STRATA, SplitSpec, load_splits, make_splits, split_report, tile_stats
from slumwatch.catalogs.testing import make_static_catalog
from slumwatch.catalogs.tiling import TileSpec

X0, Y1 = NATIVE_BBOX[0], NATIVE_BBOX[3]


@pytest.fixture(scope="module")
def labelled_cube(tmp_path_factory: pytest.TempPathFactory) -> CubeRef:
    root = tmp_path_factory.mktemp("splits")
    cat = make_static_catalog([scene(2015), scene(2016, seed=1)], root=root / "cat")
    ref = build_cube(
        items=search_items(catalog=cat),
        out=root / "cube.zarr",
        grid=native_grid(),
        tile=TileSpec(16),
        window_tiles=4,
        progress=False,
    )
    boxes = [
        sg.box(X0 + c0 * RES, Y1 - r1 * RES, X0 + c1 * RES, Y1 - r0 * RES)
        for r0, r1, c0, c1 in [(0, 48, 0, 48), (50, 60, 70, 90), (64, 96, 100, 128)]
    ]
    src = root / "slums.geojson"
    gpd.GeoDataFrame(geometry=boxes, crs="EPSG:32643").to_file(src, driver="GeoJSON")
    rasterize_labels(cube=ref, source=src)
    return ref


def test_tile_stats_cover_grid(labelled_cube: CubeRef) -> None:
    stats = tile_stats(cube=labelled_cube)
    assert len(stats) == 6 * 8
    assert stats[0].tile_id == "r00000_c00000" and stats[0].slum_fraction == 1.0
    assert sum(s.slum for s in stats) == 2 * (48 * 48 + 10 * 20 + 32 * 28)


def test_splits_are_disjoint_stratified_nested_and_seeded(labelled_cube: CubeRef, tmp_path: Path) -> None:
    spec = SplitSpec(seed=3, fractions=(0.03, 0.1, 0.2, 0.3))
    s = make_splits(cube=labelled_cube, spec=spec)
    train, val, test = set(s.train), set(s.val), set(s.test)
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == len(s.strata)
    for stratum in STRATA:
        members = [t for t, k in s.strata.items() if k == stratum]
        if len(members) >= 4:
            assert any(s.strata[t] == stratum for t in s.train)
    subsets = [set(s.subsets[k]) for k in ("3", "10", "20", "30")]
    assert all(a <= b for a, b in itertools.pairwise(subsets))
    assert subsets[-1] <= train and len(subsets[0]) >= 1
    again = make_splits(cube=labelled_cube, spec=spec)
    assert again.sha256 == s.sha256
    other = make_splits(cube=labelled_cube, spec=SplitSpec(seed=4))
    assert other.train != s.train
    path = s.save(tmp_path / "splits.json")
    loaded = load_splits(path)
    assert loaded.train == s.train and loaded.subsets == s.subsets and loaded.sha256 == s.sha256
    report = json.loads(path.read_text())["report"]
    assert report["train"]["tiles"] == len(s.train) and 0 < report["train"]["slum_fraction"] < 1
    assert split_report(s)["train_30"]["tiles"] == len(s.subsets["30"])


def test_tampered_splits_fail_hash(labelled_cube: CubeRef, tmp_path: Path) -> None:
    path = make_splits(cube=labelled_cube).save(tmp_path / "s.json")
    payload = json.loads(path.read_text())
    payload["train"] = payload["train"][:-1]
    path.write_text(json.dumps(payload))
    with pytest.raises(SplitError, match="sha256"):
        load_splits(path)


def test_blocked_splits_keep_blocks_together(labelled_cube: CubeRef) -> None:
    s = make_splits(cube=labelled_cube, spec=SplitSpec(block=2))
    where = {t: name for name in ("train", "val", "test") for t in s.split(name)}
    for t, name in where.items():
        r, c = int(t[1:6]), int(t[8:])
        for t2, name2 in where.items():
            r2, c2 = int(t2[1:6]), int(t2[8:])
            if (r // 2, c // 2) == (r2 // 2, c2 // 2):
                assert name == name2


def test_segslum_roundtrip(labelled_cube: CubeRef, tmp_path: Path) -> None:
    s = make_splits(cube=labelled_cube, spec=SplitSpec(fractions=(0.1,)))
    index = export_segslum(cube=labelled_cube, splits=s, out=tmp_path / "seg", years=[2015])
    assert set(index.lists) == {"train", "val", "test", "train_10"}
    back = read_segslum(tmp_path / "seg")
    assert back.lists["train"] == index.lists["train"]
    sid = back.lists["train"][0]
    assert parse_id(sid)[0] == 2015
    image, label = load_sample(back, sid)
    assert image.shape == (3, 16, 16) and image.dtype == np.uint8 and label.shape == (16, 16)
    index.image_path(back.lists["val"][0]).unlink()
    with pytest.raises(SplitError.__mro__[1], match="incomplete"):
        read_segslum(tmp_path / "seg")
