"""The tile grid: exact cover by cores, clipped read windows, stable ids."""

from __future__ import annotations

import numpy as np
import pytest

from slumwatch.catalogs.tiling import TileSpec, TilingError, iter_tiles, tile_count


@pytest.mark.parametrize(("height", "width"), [(256, 256), (777, 1000), (1, 1), (300, 40)])
@pytest.mark.parametrize("spec", [TileSpec(256), TileSpec(128, 16), TileSpec(64, 63)])
def test_cores_cover_the_raster_exactly_once(height: int, width: int, spec: TileSpec) -> None:
    cover = np.zeros((height, width), dtype=np.int32)
    for w in iter_tiles(spec, height=height, width=width):
        cover[w.core_slices] += 1
        rr, cc = w.read_slices
        assert 0 <= rr.start <= w.row_off and rr.stop <= height
        assert 0 <= cc.start <= w.col_off and cc.stop <= width
        cr, ccol = w.core_in_read
        assert cr.stop - cr.start == w.height and ccol.stop - ccol.start == w.width
        assert w.read_height <= spec.size + 2 * spec.overlap
    assert (cover == 1).all()


def test_ids_are_stable_and_independent_of_raster_size() -> None:
    a = {w.tile_id: (w.row_off, w.col_off) for w in iter_tiles(TileSpec(100), height=250, width=250)}
    b = {w.tile_id: (w.row_off, w.col_off) for w in iter_tiles(TileSpec(100), height=500, width=300)}
    assert a["r00001_c00002"] == b["r00001_c00002"] == (100, 200)
    assert tile_count(TileSpec(100), height=250, width=250) == (3, 3)


def test_read_window_extends_core_by_overlap() -> None:
    tiles = list(iter_tiles(TileSpec(100, 10), height=300, width=300))
    mid = next(t for t in tiles if t.tile_id == "r00001_c00001")
    assert (mid.read_row_off, mid.read_height) == (90, 120)
    corner = tiles[0]
    assert (corner.read_row_off, corner.read_height) == (0, 110)
    assert corner.core_in_read == (slice(0, 100), slice(0, 100))


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (-1, 0), (10, 10), (10, -1)])
def test_bad_specs_are_typed_errors(size: int, overlap: int) -> None:
    with pytest.raises(TilingError):
        TileSpec(size, overlap)


def test_empty_raster_is_an_error() -> None:
    with pytest.raises(TilingError, match="non-empty"):
        list(iter_tiles(TileSpec(8), height=0, width=5))
