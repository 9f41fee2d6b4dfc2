"""Reading padded tiles out of a cube, and the band stretch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from cube_fixtures import make_cube

from slumwatch.actors.tiles import BandScaling, CubeArrays, TileReadError, load_labelled_tiles, read_tile
from slumwatch.catalogs.tiling import TileSpec, iter_tiles


def test_band_scaling_handles_uint16_and_clips() -> None:
    s = BandScaling(bands=("a", "b"), low=(100.0, 0.0), high=(1100.0, 4000.0))
    img = np.array([[[0, 600, 5000]], [[0, 2000, 4000]]], dtype=np.uint16)
    out = s.apply(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out[1, 0], [0.0, 0.5, 1.0])
    assert BandScaling.from_dict(s.to_dict()) == s
    with pytest.raises(TileReadError, match="must exceed"):
        BandScaling(bands=("a",), low=(5.0,), high=(5.0,))


def test_read_tile_pads_edges_as_invalid(tmp_path: Path) -> None:
    cube = CubeArrays.open(make_cube(tmp_path / "c.zarr"))
    spec = TileSpec(32, 8)
    windows = list(iter_tiles(spec, height=70, width=90))
    last = windows[-1]
    image, valid, labels = read_tile(cube, time_index=1, window=last, spec=spec)
    assert image.shape == (3, 48, 48) and valid.shape == (48, 48) and labels is not None
    rows, cols = last.read_slices
    r0 = last.read_row_off - (last.row_off - spec.overlap)
    c0 = last.read_col_off - (last.col_off - spec.overlap)
    expected = np.asarray(cube.imagery[1, :, rows, cols])
    np.testing.assert_array_equal(image[:, r0 : r0 + last.read_height, c0 : c0 + last.read_width], expected)
    assert not valid[r0 + last.read_height :, :].any()
    assert (labels[r0 + last.read_height :, :] == 255).all()


def test_load_labelled_tiles_skips_unlabelled_and_names_missing_years(tmp_path: Path) -> None:
    path = make_cube(tmp_path / "c.zarr")
    scaling = BandScaling(bands=("red", "green", "blue"), low=(0.0,) * 3, high=(255.0,) * 3)
    tiles = load_labelled_tiles(
        cube=path, years=[2015], cube_years=[2014, 2015], spec=TileSpec(32), scaling=scaling
    )
    assert tiles.images.shape[1:] == (3, 32, 32) and tiles.images.dtype == np.float32
    assert tiles.labels.shape[0] == len(tiles.tile_ids) == tiles.images.shape[0]
    assert all(t.startswith("2015/") for t in tiles.tile_ids)
    assert set(np.unique(tiles.labels)) <= {0, 1, 255}
    with pytest.raises(TileReadError, match=r"years \[2030\]"):
        load_labelled_tiles(
            cube=path, years=[2030], cube_years=[2014, 2015], spec=TileSpec(32), scaling=scaling
        )


def test_open_rejects_non_cubes(tmp_path: Path) -> None:
    with pytest.raises(TileReadError):
        CubeArrays.open(tmp_path / "nothing.zarr")
    xr.Dataset({"other": (("y",), np.zeros(3))}).to_zarr(str(tmp_path / "x.zarr"))
    with pytest.raises(TileReadError, match="no 'imagery'"):
        CubeArrays.open(tmp_path / "x.zarr")


def test_checkpoint_scaling_without_band_names_uses_the_cube_bands(tmp_path: Path) -> None:
    from slumwatch.actors.inference import InferenceError
    from slumwatch.actors.segmentation import scaling_for_checkpoint

    path = make_cube(tmp_path / "c.zarr")
    scaling = scaling_for_checkpoint({"low": [1.0, 2.0, 3.0], "high": [9.0, 9.0, 9.0]}, cube=path)
    assert isinstance(scaling, BandScaling)
    assert scaling.bands == ("red", "green", "blue") and scaling.low == (1.0, 2.0, 3.0)
    with pytest.raises(InferenceError, match="no input scaling"):
        scaling_for_checkpoint({}, cube=path)
