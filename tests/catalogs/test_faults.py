"""Fault injection: typed loud errors, and crash-safe resume (kill mid-run, torn chunks)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pystac
import pytest
from catalog_fixtures import native_grid, scene

from slumwatch.catalogs.cube import STATE_DIR, CubeRef, build_cube, open_cube
from slumwatch.catalogs.errors import (
    AssetNotFoundError,
    AssetReadError,
    GridMismatchError,
    TruncatedAssetError,
)
from slumwatch.catalogs.readers import AssetInfo, AssetReader, OdcStacReader, WindowData, WindowRequest
from slumwatch.catalogs.search import search_items
from slumwatch.catalogs.testing import make_static_catalog
from slumwatch.catalogs.tiling import TileSpec


def _build(items: list[pystac.Item], out: Path, **kw: object) -> CubeRef:
    kw.setdefault("grid", native_grid(resampling="nearest"))
    return build_cube(items=items, out=out, tile=TileSpec(32), window_tiles=1, progress=False, **kw)  # type: ignore[arg-type]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_missing_asset_is_loud(tmp_path: Path) -> None:
    items = search_items(catalog=make_static_catalog([scene(2015)], root=tmp_path / "c"))
    Path(items[0].assets["image"].href).unlink()
    with pytest.raises(AssetNotFoundError, match=r"scene-2015\.tif") as info:
        _build(items, tmp_path / "x.zarr")
    assert info.value.href and info.value.href.endswith("scene-2015.tif")


def test_truncated_cog_is_loud(tmp_path: Path) -> None:
    items = search_items(catalog=make_static_catalog([scene(2015, seed=1)], root=tmp_path / "c"))
    path = Path(items[0].assets["image"].href)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(TruncatedAssetError, match=r"scene-2015\.tif"):
        _build(items, tmp_path / "x.zarr")


def test_crs_mismatch_with_item_metadata(tmp_path: Path) -> None:
    spec = scene(2015, extra_properties={"proj:code": "EPSG:32644"})
    items = search_items(catalog=make_static_catalog([spec], root=tmp_path / "c"))
    with pytest.raises(GridMismatchError, match="EPSG:32644"):
        _build(items, tmp_path / "x.zarr")


def test_band_count_and_dtype_mismatch(tmp_path: Path) -> None:
    items = search_items(
        catalog=make_static_catalog([scene(2015), scene(2016, nbands=4)], root=tmp_path / "a")
    )
    with pytest.raises(GridMismatchError, match="bands"):
        _build(items, tmp_path / "x.zarr")
    # choosing common bands is fine
    _build(items, tmp_path / "ok.zarr", bands=["red", "green", "blue"])
    items = search_items(
        catalog=make_static_catalog([scene(2015), scene(2016, dtype="uint16")], root=tmp_path / "b")
    )
    with pytest.raises(GridMismatchError, match="uint16"):
        _build(items, tmp_path / "y.zarr")


class FlakyReader:
    """Wraps the real reader; fails the N-th window read."""

    def __init__(self, fail_at: int) -> None:
        self.inner = OdcStacReader()
        self.calls = 0
        self.fail_at = fail_at

    def probe(self, href: str) -> AssetInfo:
        return self.inner.probe(href)

    def read_window(self, request: WindowRequest) -> WindowData:
        self.calls += 1
        if self.calls == self.fail_at:
            raise AssetReadError(f"injected failure in window {request.window_id}", href="x")
        return self.inner.read_window(request)


def test_failed_window_leaves_no_manifest_and_resume_completes(tmp_path: Path) -> None:
    items = search_items(catalog=make_static_catalog([scene(2015, seed=4)], root=tmp_path / "c"))
    reader = FlakyReader(fail_at=5)
    assert isinstance(reader, AssetReader)
    out = tmp_path / "x.zarr"
    with pytest.raises(AssetReadError, match="injected"):
        _build(items, out, reader=reader, workers=1)
    manifests = list((out / STATE_DIR / "manifests" / "2015").glob("*.json"))
    assert len(manifests) == 4
    ref_out = tmp_path / "ref.zarr"
    _build(items, ref_out, workers=1)
    _build(items, out, workers=1)
    assert _files(out) == _files(ref_out)


KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from slumwatch.catalogs.cube import build_cube, GridSpec
    from slumwatch.catalogs.readers import OdcStacReader
    from slumwatch.catalogs.search import search_items
    from slumwatch.catalogs.tiling import TileSpec

    catalog, out, kill_after, bbox = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), eval(sys.argv[4])

    class Killer(OdcStacReader):
        n = 0
        def read_window(self, request):
            data = super().read_window(request)
            Killer.n += 1
            if Killer.n > kill_after:
                os._exit(17)  # dies like a SIGKILL: no cleanup, no flush
            return data

    build_cube(items=search_items(catalog=catalog), out=out, tile=TileSpec(32), window_tiles=1,
               progress=False,
               grid=GridSpec(bbox=bbox, bbox_crs="EPSG:32643", resolution=0.6, resampling="nearest"),
               reader=Killer(), workers=1)
    """
)


def test_kill_midway_then_resume_is_byte_identical(tmp_path: Path) -> None:
    from catalog_fixtures import NATIVE_BBOX

    cat = make_static_catalog([scene(2015, cloud_fraction=0.3), scene(2016, seed=9)], root=tmp_path / "c")
    items = search_items(catalog=cat)
    killed = tmp_path / "killed.zarr"
    # 12 windows per year: die in the middle of 2016
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(cat), str(killed), "17", repr(NATIVE_BBOX)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 17, proc.stderr[-2000:]
    done_2016 = sorted((killed / STATE_DIR / "manifests" / "2016").glob("*.json"))
    assert 0 < len(done_2016) < 12
    # tear a chunk of a finished window and leave garbage in an unfinished one
    torn = killed / "imagery" / "c" / "1" / "0" / "0" / "0"
    torn.write_bytes(torn.read_bytes()[:7])
    garbage = killed / "imagery" / "c" / "1" / "0" / "2" / "3"
    garbage.parent.mkdir(parents=True, exist_ok=True)
    garbage.write_bytes(b"\x00torn")
    _build(items, killed, workers=2)
    clean = tmp_path / "clean.zarr"
    _build(items, clean, workers=1)
    assert _files(killed) == _files(clean)
    assert open_cube(CubeRef(killed))["imagery"].shape[0] == 2
