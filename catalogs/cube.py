"""Multi-year imagery cubes: STAC items -> one Zarr v3 store on one grid, one composite per year.

Layout (``docs/architecture.md``, "Cube"):

- ``imagery`` (time, band, y, x), source dtype, nodata 0, chunks ``(1, nband, tile, tile)``
- ``valid`` (time, y, x) uint8, 1 = usable pixel
- coords ``time`` (one composite per year, ``<year>-07-01``), ``band`` (common names), ``y``/``x``
  (pixel centres), ``spatial_ref`` (rioxarray CRS + GeoTransform, ``grid_mapping`` on the variables)
- root attrs: provenance (``slumwatch:items`` per year, ``slumwatch:query``, ``slumwatch:version``,
  ``slumwatch:grid``, ``slumwatch:years`` with scenes and valid fraction per year)

Crash safety. The grid is cut into *windows* of ``window_tiles x window_tiles`` chunks
(the tile grid of :mod:`slumwatch.catalogs.tiling` at a larger size). Each window of each
year is loaded with odc-stac, composited, and written as whole chunks; only then is its
completion manifest written atomically (``.slumwatch/manifests/<year>/<window>.json``,
recording every chunk's byte size). A re-run skips windows whose manifest matches both the
plan (same items) and the chunk files on disk; any other window -- never started, killed
mid-write, torn chunk -- is rewritten in full. A new year is appended along ``time``
without touching the others. Peak memory is bounded by ``workers`` windows, whatever the AOI.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pystac
import shapely.geometry
import xarray as xr
from odc.geo import geom as odc_geom
from odc.geo.geobox import GeoBox
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

from slumwatch import __version__
from slumwatch.catalogs.errors import (
    AssetNotFoundError,
    CubeError,
    EmptySearchError,
    EmptyYearError,
    GridMismatchError,
)
from slumwatch.catalogs.readers import (
    CLEAR,
    AssetInfo,
    AssetReader,
    OdcStacReader,
    WindowData,
    WindowRequest,
    annotate_item,
)
from slumwatch.catalogs.search import item_interval
from slumwatch.catalogs.tiling import TileSpec, TileWindow, iter_tiles

__all__ = [
    "DIMS",
    "CubeRef",
    "GridSpec",
    "YearSummary",
    "band_statistics",
    "build_cube",
    "composite_window",
    "cube_summary",
    "open_cube",
    "resolve_geobox",
    "utm_crs",
]

log = logging.getLogger(__name__)

#: Dimension order of the imagery variable.
DIMS: tuple[str, str, str, str] = ("time", "band", "y", "x")
#: Nodata of the imagery variable.
NODATA = 0
#: Month and day stamped on a year's composite.
COMPOSITE_MONTH_DAY = (7, 1)
#: Folder (inside the store) holding completion manifests.
STATE_DIR = ".slumwatch"
#: Default window edge, in tiles.
WINDOW_TILES = 4
#: Name of the CRS coordinate written by rioxarray.
SPATIAL_REF = "spatial_ref"
#: Time encoding (fixed so appends are byte-stable).
TIME_ENCODING = {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"}
#: Attribute keys.
ATTR_VERSION = "slumwatch:version"
ATTR_QUERY = "slumwatch:query"
ATTR_ITEMS = "slumwatch:items"
ATTR_GRID = "slumwatch:grid"
ATTR_YEARS = "slumwatch:years"
ATTR_COMPOSITE = "slumwatch:composite"
ATTR_MISSING = "slumwatch:missing_years"
#: Default number of sampled pixels for band statistics.
STAT_SAMPLES = 200_000
#: Most chunks read by band statistics.
STAT_MAX_CHUNKS = 64

Composite = Literal["best", "median"]
EmptyYearPolicy = Literal["keep", "drop", "raise"]


@dataclass(frozen=True)
class CubeRef:
    """Names a cube store and the variable of interest in it."""

    path: Path
    variable: str = "imagery"


@dataclass(frozen=True)
class GridSpec:
    """The output grid of a cube.

    Attributes:
        bbox: ``(west, south, east, north)`` in ``bbox_crs`` (WGS84 by default). With neither
            ``bbox`` nor ``aoi`` the union of the items' footprints is used: their exact native
            bounds (``proj:transform``/``proj:shape``) when they share one CRS, else their WGS84 bboxes.
        aoi: A GeoJSON geometry (WGS84) whose bounds define the grid.
        crs: Output CRS; ``None`` = the UTM zone of the AOI centre.
        resolution: Pixel size in CRS units (metres).
        resampling: Resampling of the imagery (the cloud mask is always nearest).
        nodata: Nodata of the imagery.
        bbox_crs: CRS of ``bbox`` (e.g. the cube CRS, to pin an exact native grid).
    """

    bbox: tuple[float, float, float, float] | None = None
    aoi: Mapping[str, Any] | None = field(default=None, hash=False)
    crs: str | None = None
    resolution: float = 0.6
    resampling: str = "bilinear"
    nodata: int = NODATA
    bbox_crs: str = "EPSG:4326"

    def __post_init__(self) -> None:
        if self.resolution <= 0:
            raise GridMismatchError(f"GridSpec.resolution must be positive, got {self.resolution}")
        if self.bbox is not None and not (self.bbox[0] < self.bbox[2] and self.bbox[1] < self.bbox[3]):
            raise GridMismatchError(f"GridSpec.bbox {self.bbox} is not (west, south, east, north)")


@dataclass(frozen=True)
class YearSummary:
    """What went into one year's composite."""

    year: int
    scenes: int
    item_ids: tuple[str, ...]
    valid_fraction: float
    valid_pixels: int
    pixels: int


# --------------------------------------------------------------------------- grid


def utm_crs(lon: float, lat: float) -> str:
    """EPSG code of the WGS84 UTM zone containing ``(lon, lat)``."""
    zone = min(60, max(1, math.floor((lon + 180.0) / 6.0) + 1))
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _items_wgs84_bounds(items: Sequence[pystac.Item]) -> tuple[float, float, float, float]:
    boxes = []
    for it in items:
        if it.bbox is not None:
            boxes.append(
                it.bbox[:4] if len(it.bbox) == 4 else [it.bbox[0], it.bbox[1], it.bbox[3], it.bbox[4]]
            )
        elif it.geometry is not None:
            boxes.append(list(shapely.geometry.shape(it.geometry).bounds))
    if not boxes:
        raise EmptySearchError("no item has a bbox or geometry to derive the grid from; give GridSpec.bbox")
    arr = np.asarray(boxes, dtype=float)
    return float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())


def _items_native_bounds(
    items: Sequence[pystac.Item], crs: str | None
) -> tuple[str, tuple[float, float, float, float]] | None:
    """Union of the items' exact footprints from ``proj:transform``/``proj:shape`` when they share
    one CRS (and it is ``crs`` when given); ``None`` otherwise."""
    codes = {_declared_crs(it) for it in items}
    if len(codes) != 1 or None in codes:
        return None
    code = codes.pop()
    assert code is not None
    if crs is not None and CRS.from_user_input(crs) != CRS.from_user_input(code):
        return None
    boxes = []
    for it in items:
        tr, shape = it.properties.get("proj:transform"), it.properties.get("proj:shape")
        if not tr or not shape or len(tr) < 6:
            return None
        a = Affine(*[float(v) for v in tr[:6]])
        if a.b != 0 or a.d != 0:
            return None
        x0, y0 = a.c, a.f
        x1, y1 = a.c + a.a * shape[1], a.f + a.e * shape[0]
        boxes.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    arr = np.asarray(boxes, dtype=float)
    return code, (
        float(arr[:, 0].min()),
        float(arr[:, 1].min()),
        float(arr[:, 2].max()),
        float(arr[:, 3].max()),
    )


def _pixel_anchor(items: Sequence[pystac.Item], crs: str, res: float) -> tuple[float, float]:
    """Offset of the pixel lattice: the items' own lattice when they are already on ``crs`` at
    ``res`` (so a native-resolution cube copies pixels instead of resampling them half a pixel
    off), else multiples of ``res`` from 0."""
    for it in items:
        tr = it.properties.get("proj:transform")
        code = _declared_crs(it)
        if not tr or len(tr) < 6 or code is None:
            continue
        if CRS.from_user_input(code) != CRS.from_user_input(crs):
            continue
        if math.isclose(abs(float(tr[0])), res, rel_tol=1e-9) and math.isclose(
            abs(float(tr[4])), res, rel_tol=1e-9
        ):
            return float(tr[2]) % res, float(tr[5]) % res
    return 0.0, 0.0


def resolve_geobox(grid: GridSpec, items: Sequence[pystac.Item] = ()) -> GeoBox:
    """The pixel grid of ``grid``: CRS, snapped bounds (multiples of the resolution), shape."""
    if grid.aoi is not None:
        src_bounds = tuple(shapely.geometry.shape(grid.aoi).bounds)
        src_crs = "EPSG:4326"
    elif grid.bbox is not None:
        src_bounds = tuple(float(v) for v in grid.bbox)
        src_crs = grid.bbox_crs
    else:
        native = _items_native_bounds(items, grid.crs)
        if native is not None:
            src_crs, src_bounds = native
        else:
            src_bounds = _items_wgs84_bounds(items)
            src_crs = "EPSG:4326"
    if grid.crs is None and src_crs != "EPSG:4326":
        grid = GridSpec(
            bbox=grid.bbox,
            aoi=grid.aoi,
            crs=src_crs,
            resolution=grid.resolution,
            resampling=grid.resampling,
            nodata=grid.nodata,
            bbox_crs=grid.bbox_crs,
        )
    if grid.crs is not None:
        crs = grid.crs
    else:
        w84 = transform_bounds(src_crs, "EPSG:4326", *src_bounds) if src_crs != "EPSG:4326" else src_bounds
        crs = utm_crs((w84[0] + w84[2]) / 2.0, (w84[1] + w84[3]) / 2.0)
    if CRS.from_user_input(src_crs) == CRS.from_user_input(crs):
        left, bottom, right, top = src_bounds
    else:
        left, bottom, right, top = transform_bounds(src_crs, crs, *src_bounds, densify_pts=21)
    res = grid.resolution
    eps = 1e-6
    ax, ay = _pixel_anchor(items, crs, res)
    x0 = math.floor((left - ax) / res + eps) * res + ax
    y1 = math.ceil((top - ay) / res - eps) * res + ay
    width = max(1, math.ceil((right - x0) / res - eps))
    height = max(1, math.ceil((y1 - bottom) / res - eps))
    affine = Affine(res, 0.0, x0, 0.0, -res, y1)
    return GeoBox((height, width), affine, crs)


# --------------------------------------------------------------------------- composite


def composite_window(
    data: WindowData, *, method: Composite, nodata: int = NODATA
) -> tuple[np.ndarray, np.ndarray]:
    """Composite a window's items into ``(image (band, y, x), valid (y, x) uint8)``.

    A pixel of an item is usable when no band is nodata and its cloud mask is clear.
    ``best`` takes, per pixel, the first usable item (items come best first: least cloudy);
    ``median`` takes the per-band median of usable items (rounded to the source dtype).
    """
    image = data.image
    n, nband, h, w = image.shape
    if n == 0:
        return np.full((nband, h, w), nodata, dtype=image.dtype), np.zeros((h, w), dtype="uint8")
    usable = np.all(image != nodata, axis=1)
    if data.mask is not None:
        usable &= data.mask == CLEAR
    any_usable = usable.any(axis=0)
    fill = np.asarray(nodata, dtype=image.dtype)
    if method == "best":
        # walk items best first and fill only pixels still empty (cheaper than fancy indexing)
        out = np.where(usable[0][None], image[0], fill)
        if n > 1:
            filled = usable[0].copy()
            for i in range(1, n):
                take = usable[i] & ~filled
                if take.any():
                    np.copyto(out, image[i], where=take[None])
                    filled |= take
    elif method == "median":
        out = np.empty((nband, h, w), dtype=image.dtype)
        for b in range(nband):
            stack = image[:, b].astype("float32")
            stack[~usable] = np.nan
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(stack, axis=0)
            out[b] = np.where(any_usable, np.rint(np.nan_to_num(med, nan=nodata)), nodata).astype(image.dtype)
    else:
        raise ValueError(f"composite must be 'best' or 'median', got {method!r}")
    return out, any_usable.astype("uint8")


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Band:
    name: str
    index: int  # 1-based in the asset


@dataclass
class _Plan:
    geobox: GeoBox
    bands: tuple[_Band, ...]
    dtype: str
    years: dict[int, tuple[pystac.Item, ...]]  # best first
    missing_years: tuple[int, ...]
    windows: tuple[TileWindow, ...]
    tile: int
    window_size: int


def _cloud(item: pystac.Item) -> float:
    value = item.properties.get("eo:cloud_cover")
    return float(value) if value is not None else math.inf


def _band_names(item: pystac.Item, asset: str, count: int) -> list[str]:
    eo = item.assets[asset].extra_fields.get("eo:bands") or item.properties.get("eo:bands") or []
    names = []
    for i in range(count):
        band = eo[i] if i < len(eo) else {}
        names.append(str(band.get("common_name") or band.get("name") or f"b{i + 1}"))
    return names


def _declared_crs(item: pystac.Item) -> str | None:
    code = item.properties.get("proj:code")
    if code:
        return str(code)
    epsg = item.properties.get("proj:epsg")
    return f"EPSG:{int(epsg)}" if epsg else None


def _footprint(item: pystac.Item, crs: str) -> odc_geom.Geometry | None:
    if item.geometry is not None:
        g = odc_geom.Geometry(item.geometry, "EPSG:4326")
    elif item.bbox is not None:
        b = item.bbox
        g = odc_geom.box(b[0], b[1], b[2], b[3], "EPSG:4326")
    else:
        return None
    return g.to_crs(crs)


def _probe_all(
    items: Sequence[pystac.Item], *, asset: str, mask_asset: str | None, reader: AssetReader, workers: int
) -> dict[str, AssetInfo]:
    hrefs: list[str] = []
    for it in items:
        if asset not in it.assets:
            raise AssetNotFoundError(
                f"item {it.id} has no asset {asset!r} (has {sorted(it.assets)})", href=None
            )
        hrefs.append(it.assets[asset].href)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        infos = list(pool.map(reader.probe, hrefs))
    return {it.id: info for it, info in zip(items, infos, strict=True)}


def _year_of(item: pystac.Item) -> int:
    return item_interval(item)[0].year


def _make_plan(
    *,
    items: Sequence[pystac.Item],
    grid: GridSpec,
    bands: Sequence[str] | None,
    asset: str,
    mask_asset: str | None,
    years: Sequence[int] | None,
    tile: TileSpec,
    window_tiles: int,
    reader: AssetReader,
    workers: int,
    existing_geobox: GeoBox | None,
) -> _Plan:
    if not items:
        raise EmptySearchError("build_cube got no items")
    by_year: dict[int, list[pystac.Item]] = {}
    for it in items:
        by_year.setdefault(_year_of(it), []).append(it)
    wanted = sorted(set(years)) if years is not None else sorted(by_year)
    selected = [it for y in wanted for it in by_year.get(y, [])]
    missing = [y for y in wanted if y not in by_year]
    if not selected:
        raise EmptySearchError(
            f"no item falls in the requested years {wanted} (items cover {sorted(by_year)})"
        )
    geobox = (
        existing_geobox
        if (existing_geobox is not None and grid.bbox is None and grid.aoi is None)
        else (resolve_geobox(grid, selected))
    )
    crs = str(geobox.crs)
    extent = geobox.extent
    # drop items that do not touch the grid; a year left without items is missing
    touching: dict[int, list[pystac.Item]] = {}
    for y in wanted:
        for it in by_year.get(y, []):
            fp = _footprint(it, crs)
            if fp is None or fp.intersects(extent):
                touching.setdefault(y, []).append(it)
    if not touching:
        raise EmptySearchError(
            f"the AOI {geobox.extent.to_crs('EPSG:4326').boundingbox} lies outside every one of the "
            f"{len(selected)} items ({', '.join(it.id for it in selected[:5])}...)"
        )
    missing += [y for y in wanted if y in by_year and y not in touching]
    kept = [it for y in sorted(touching) for it in touching[y]]
    infos = _probe_all(kept, asset=asset, mask_asset=mask_asset, reader=reader, workers=workers)
    first = kept[0]
    ref_info = infos[first.id]
    ref_names = _band_names(first, asset, ref_info.count)
    if bands is None:
        chosen = tuple(_Band(n, i + 1) for i, n in enumerate(ref_names))
    else:
        chosen_list = []
        for name in bands:
            if name not in ref_names:
                raise GridMismatchError(
                    f"band {name!r} not in asset {asset!r} of item {first.id} (bands: {', '.join(ref_names)})"
                )
            chosen_list.append(_Band(name, ref_names.index(name) + 1))
        chosen = tuple(chosen_list)
    for it in kept:
        info = infos[it.id]
        declared = _declared_crs(it)
        if (
            declared is not None
            and info.crs is not None
            and CRS.from_user_input(declared) != CRS.from_user_input(info.crs)
        ):
            raise GridMismatchError(
                f"item {it.id}: asset {info.href} is in {info.crs} but the item declares proj:code {declared}"
            )
        if info.crs is None:
            raise GridMismatchError(f"item {it.id}: asset {info.href} has no CRS")
        if info.dtype != ref_info.dtype:
            raise GridMismatchError(
                f"item {it.id}: asset {info.href} is {info.dtype} but item {first.id} is {ref_info.dtype}"
            )
        if bands is None and info.count != ref_info.count:
            raise GridMismatchError(
                f"item {it.id}: asset {info.href} has {info.count} bands "
                f"but item {first.id} has {ref_info.count}"
            )
        names = _band_names(it, asset, info.count)
        for b in chosen:
            if b.index > info.count or names[b.index - 1] != b.name:
                raise GridMismatchError(
                    f"item {it.id}: asset {info.href} band {b.index} is not {b.name!r} "
                    f"(bands: {', '.join(names)})"
                )
    if ref_info.dtype not in {"uint8", "uint16"}:
        log.warning("imagery dtype %s is not uint8/uint16; storing it as is", ref_info.dtype)
    annotated: dict[int, tuple[pystac.Item, ...]] = {}
    for y, its in touching.items():
        ordered = sorted(its, key=lambda it: (_cloud(it), item_interval(it)[0], it.id))
        annotated[y] = tuple(
            annotate_item(
                it,
                asset=asset,
                count=infos[it.id].count,
                dtype=ref_info.dtype,
                nodata=grid.nodata,
                mask_asset=mask_asset,
            )
            for it in ordered
        )
    h, w = geobox.shape.yx
    window_size = tile.size * window_tiles
    windows = tuple(iter_tiles(TileSpec(window_size), height=h, width=w))
    return _Plan(
        geobox=geobox,
        bands=chosen,
        dtype=ref_info.dtype,
        years=dict(sorted(annotated.items())),
        missing_years=tuple(sorted(set(missing))),
        windows=windows,
        tile=tile.size,
        window_size=window_size,
    )


# --------------------------------------------------------------------------- store


def _grid_attrs(plan: _Plan) -> dict[str, Any]:
    gb = plan.geobox
    return {
        "crs": str(gb.crs),
        "transform": [float(v) for v in list(gb.affine)[:6]],
        "shape": [int(v) for v in gb.shape.yx],
        "resolution": float(gb.resolution.x),
        "tile": plan.tile,
        "window": plan.window_size,
        "bands": [b.name for b in plan.bands],
        "dtype": plan.dtype,
    }


def _year_time(year: int) -> np.datetime64:
    return np.datetime64(dt.datetime(year, *COMPOSITE_MONTH_DAY), "ns")


def _template(plan: _Plan, year: int, *, extra_vars: Sequence[str] = ()) -> xr.Dataset:
    import dask.array as da
    import rioxarray  # noqa: F401  (registers .rio)

    h, w = plan.geobox.shape.yx
    t = plan.tile
    nb = len(plan.bands)
    gb = plan.geobox
    ys = gb.affine.f + gb.affine.e * (np.arange(h) + 0.5)
    xs = gb.affine.c + gb.affine.a * (np.arange(w) + 0.5)
    data_vars: dict[str, Any] = {
        "imagery": (DIMS, da.zeros((1, nb, h, w), dtype=plan.dtype, chunks=(1, nb, t, t))),
        "valid": (("time", "y", "x"), da.zeros((1, h, w), dtype="uint8", chunks=(1, t, t))),
    }
    for name in extra_vars:
        data_vars[name] = (("time", "y", "x"), da.full((1, h, w), 255, dtype="uint8", chunks=(1, t, t)))
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": np.array([_year_time(year)]),
            "band": np.array([b.name for b in plan.bands], dtype=object),
            "y": ys,
            "x": xs,
        },
    )
    ds = ds.rio.write_crs(str(gb.crs)).rio.write_transform(Affine(*list(gb.affine)[:6]))
    ds["imagery"].attrs.update(
        {"nodata": NODATA, "grid_mapping": SPATIAL_REF, "long_name": "yearly composite"}
    )
    ds["valid"].attrs.update({"grid_mapping": SPATIAL_REF, "long_name": "1 = usable pixel"})
    for name in extra_vars:
        ds[name].attrs.update({"grid_mapping": SPATIAL_REF})
    for name in ds.data_vars:
        ds[name].encoding["coordinates"] = SPATIAL_REF
    return ds


def _encoding(plan: _Plan, extra_vars: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    t = plan.tile
    nb = len(plan.bands)
    enc: dict[str, dict[str, Any]] = {
        "imagery": {"_FillValue": None, "chunks": (1, nb, t, t)},
        "valid": {"_FillValue": None, "chunks": (1, t, t)},
        "time": dict(TIME_ENCODING),
    }
    for name in extra_vars:
        enc[name] = {"_FillValue": None, "chunks": (1, t, t), "fill_value": 255}
    return enc


def _open_group(path: Path, *, mode: Literal["r", "r+"] = "r") -> Any:
    """Open the store's root group (typed ``Any``: zarr's ``Array | Group`` is too loose for mypy)."""
    import zarr

    with _quiet_zarr():
        return zarr.open_group(str(path), mode=mode, use_consolidated=False)


@contextlib.contextmanager
def _quiet_zarr() -> Iterator[None]:
    """Silence zarr's notes on consolidated v3 metadata and our non-zarr state folder."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy.*")
        yield


def _consolidate(path: Path) -> None:
    import zarr

    with _quiet_zarr():
        zarr.consolidate_metadata(str(path))


def _store_years(path: Path) -> list[int]:
    """Years on the store's time axis (read straight from zarr: this runs often)."""
    time_arr = _open_group(path, mode="r")["time"]
    if time_arr.attrs.get("units") == TIME_ENCODING["units"]:
        days = np.asarray(time_arr[:], dtype="int64")
        stamps = np.datetime64("1970-01-01", "D") + days.astype("timedelta64[D]")
        return [int(str(v)[:4]) for v in stamps]
    with _quiet_zarr():
        ds = xr.open_zarr(path, consolidated=False)
    return [int(y) for y in ds["time"].dt.year.values]


def _existing_geobox(path: Path) -> GeoBox | None:
    if not (path / "zarr.json").exists():
        return None
    with _quiet_zarr():
        attrs = dict(_open_group(path, mode="r").attrs)
    grid = attrs.get(ATTR_GRID)
    if grid is None:
        raise CubeError(f"{path} is a Zarr store but not a slumwatch cube (no {ATTR_GRID} attribute)")
    return GeoBox(tuple(grid["shape"]), Affine(*grid["transform"]), grid["crs"])


def _check_store_grid(path: Path, plan: _Plan) -> None:
    with _quiet_zarr():
        attrs = dict(_open_group(path, mode="r").attrs)
    have = attrs.get(ATTR_GRID) or {}
    want = _grid_attrs(plan)
    diffs = [
        f"{k}: store has {have.get(k)!r}, this build wants {want[k]!r}"
        for k in ("crs", "transform", "shape", "tile", "bands", "dtype")
        if have.get(k) != want[k]
    ]
    if diffs:
        raise GridMismatchError(f"cannot extend cube {path}: " + "; ".join(diffs))


def _write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(payload, fh, sort_keys=True, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _manifest_path(path: Path, year: int, window: TileWindow) -> Path:
    return path / STATE_DIR / "manifests" / str(year) / f"{window.tile_id}.json"


def _chunk_files(path: Path, plan: _Plan, t_index: int, window: TileWindow) -> list[str]:
    t = plan.tile
    rows = range(window.row_off // t, math.ceil((window.row_off + window.height) / t))
    cols = range(window.col_off // t, math.ceil((window.col_off + window.width) / t))
    files = []
    for i in rows:
        for j in cols:
            files.append(f"imagery/c/{t_index}/0/{i}/{j}")
            files.append(f"valid/c/{t_index}/{i}/{j}")
    return files


def _chunk_sizes(path: Path, files: Sequence[str]) -> dict[str, int]:
    sizes = {}
    for rel in files:
        p = path / rel
        sizes[rel] = p.stat().st_size if p.exists() else -1
    return sizes


def _window_done(
    path: Path, plan: _Plan, year: int, t_index: int, window: TileWindow
) -> dict[str, Any] | None:
    """The window's manifest when it is complete and its chunks are intact, else ``None``."""
    mpath = _manifest_path(path, year, window)
    if not mpath.exists():
        return None
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        log.warning("unreadable manifest %s; rewriting window", mpath)
        return None
    expect_items = [it.id for it in plan.years[year]]
    if manifest.get("items") != expect_items or manifest.get("time_index") != t_index:
        log.info("year %d window %s: items changed; rewriting", year, window.tile_id)
        return None
    recorded = manifest.get("chunks", {})
    actual = _chunk_sizes(path, list(recorded))
    if actual != recorded:
        bad = sorted(k for k in recorded if actual.get(k) != recorded[k])
        log.warning(
            "year %d window %s: %d torn/missing chunks (%s); repairing",
            year,
            window.tile_id,
            len(bad),
            bad[:3],
        )
        return None
    return manifest


@dataclass
class _Progress:
    total: int
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    callback: Callable[[int, int], None] | None = None

    def step(self) -> None:
        with self.lock:
            self.done += 1
            if self.callback is not None:
                self.callback(self.done, self.total)


def _touches(footprint: odc_geom.Geometry | None, extent: odc_geom.Geometry) -> bool:
    return footprint is None or bool(footprint.intersects(extent))


def _process_window(
    *,
    path: Path,
    plan: _Plan,
    year: int,
    t_index: int,
    window: TileWindow,
    reader: AssetReader,
    grid: GridSpec,
    asset: str,
    mask_asset: str | None,
    composite: Composite,
    footprints: Mapping[str, odc_geom.Geometry | None],
) -> dict[str, Any]:
    rows, cols = window.core_slices
    sub = plan.geobox[rows, cols]
    items = tuple(it for it in plan.years[year] if _touches(footprints[it.id], sub.extent))
    nb = len(plan.bands)
    h, w = window.height, window.width
    if items:
        data = reader.read_window(
            WindowRequest(
                year=year,
                window_id=window.tile_id,
                items=items,
                geobox=sub,
                asset=asset,
                band_indices=tuple(b.index for b in plan.bands),
                mask_asset=mask_asset,
                resampling=grid.resampling,
                dtype=plan.dtype,
                nodata=grid.nodata,
            )
        )
        image, valid = composite_window(data, method=composite, nodata=grid.nodata)
    else:
        image = np.full((nb, h, w), grid.nodata, dtype=plan.dtype)
        valid = np.zeros((h, w), dtype="uint8")
    with _quiet_zarr():
        group = _open_group(path, mode="r+")
        group["imagery"][t_index, :, rows, cols] = image
        group["valid"][t_index, rows, cols] = valid
    files = _chunk_files(path, plan, t_index, window)
    manifest = {
        "year": year,
        "time_index": t_index,
        "window": window.tile_id,
        "rows": [rows.start, rows.stop],
        "cols": [cols.start, cols.stop],
        "items": [it.id for it in plan.years[year]],
        "items_read": [it.id for it in items],
        "valid_pixels": int(valid.sum()),
        "pixels": int(h * w),
        "chunks": _chunk_sizes(path, files),
    }
    _write_json_atomic(_manifest_path(path, year, window), manifest)
    return manifest


def _append_year(path: Path, plan: _Plan, year: int) -> int:
    """Append ``year`` along time (or create the store); return its time index."""
    extra: list[str] = []
    if (path / "zarr.json").exists():
        with _quiet_zarr():
            group = _open_group(path, mode="r")
            extra = sorted(
                k
                for k in group.array_keys()
                if k not in {"imagery", "valid", "time", "band", "y", "x", SPATIAL_REF} and group[k].ndim == 3
            )
        present = _store_years(path)
        if year in present:
            return present.index(year)
        if present and year < max(present):
            raise CubeError(
                f"cannot add year {year} to cube {path}: it holds {present} and years are only appended "
                f"after the last one; rebuild into a new store"
            )
        tmpl = _template(plan, year, extra_vars=extra)
        tmpl.attrs.update(dict(_open_group(path, mode="r").attrs))  # append rewrites the root attributes
        with _quiet_zarr():
            tmpl.to_zarr(path, append_dim="time", compute=False, consolidated=True, zarr_format=3)
        return len(present)
    # create next to the target and rename, so a crash never leaves a half-made store at ``path``
    staging = path.with_name(f".{path.name}.creating")
    if staging.exists():
        shutil.rmtree(staging)
    tmpl = _template(plan, year)
    tmpl.attrs.update({ATTR_GRID: _grid_attrs(plan)})
    with _quiet_zarr():
        tmpl.to_zarr(
            staging, mode="w-", compute=False, consolidated=True, zarr_format=3, encoding=_encoding(plan)
        )
    if path.exists():
        path.rmdir()  # an empty folder (checked by build_cube)
    staging.rename(path)
    return 0


def _truncate_last_year(path: Path, year: int) -> None:
    with _quiet_zarr():
        group = _open_group(path, mode="r+")
        n = group["time"].shape[0]
        for key in group.array_keys():
            arr = group[key]
            dims = arr.metadata.dimension_names or ()
            if dims and dims[0] == "time":
                arr.resize((n - 1, *arr.shape[1:]))
    state = path / STATE_DIR / "manifests" / str(year)
    if state.exists():
        for f in sorted(state.iterdir()):
            f.unlink()
        state.rmdir()


def _summaries(path: Path, plan: _Plan, years: Sequence[int]) -> dict[int, YearSummary]:
    out: dict[int, YearSummary] = {}
    for year in years:
        folder = path / STATE_DIR / "manifests" / str(year)
        valid = pixels = 0
        if folder.exists():
            for f in sorted(folder.glob("*.json")):
                m = json.loads(f.read_text(encoding="utf-8"))
                valid += int(m["valid_pixels"])
                pixels += int(m["pixels"])
        ids = tuple(it.id for it in plan.years.get(year, ()))
        out[year] = YearSummary(
            year=year,
            scenes=len(ids),
            item_ids=ids,
            valid_fraction=(valid / pixels) if pixels else 0.0,
            valid_pixels=valid,
            pixels=pixels,
        )
    return out


def _write_root_attrs(
    path: Path,
    plan: _Plan,
    summaries: Mapping[int, YearSummary],
    *,
    query: Mapping[str, Any] | None,
    composite: str,
) -> None:
    with _quiet_zarr():
        group = _open_group(path, mode="r+")
        prev = dict(group.attrs)
        items = dict(prev.get(ATTR_ITEMS, {}))
        years = dict(prev.get(ATTR_YEARS, {}))
        for y, s in summaries.items():
            items[str(y)] = list(s.item_ids)
            years[str(y)] = {
                "scenes": s.scenes,
                "valid_fraction": round(s.valid_fraction, 6),
                "valid_pixels": s.valid_pixels,
                "pixels": s.pixels,
            }
        present = {str(y) for y in _store_years(path)}
        attrs = {
            ATTR_VERSION: __version__,
            ATTR_GRID: _grid_attrs(plan),
            ATTR_COMPOSITE: composite,
            ATTR_ITEMS: {k: items[k] for k in sorted(items) if k in present},
            ATTR_YEARS: {k: years[k] for k in sorted(years) if k in present},
            ATTR_MISSING: sorted(
                set(prev.get(ATTR_MISSING, [])) | set(plan.missing_years) - {int(k) for k in present}
            ),
            ATTR_QUERY: dict(query) if query is not None else prev.get(ATTR_QUERY, {}),
        }
        group.attrs.update(attrs)
    _consolidate(path)


def build_cube(
    *,
    items: Sequence[pystac.Item],
    out: Path,
    grid: GridSpec,
    bands: Sequence[str] | None = None,
    asset: str = "image",
    mask_asset: str | None = "cloud_mask",
    years: Sequence[int] | None = None,
    tile: TileSpec = TileSpec(512),
    composite: Composite = "best",
    progress: bool = True,
    reader: AssetReader | None = None,
    window_tiles: int = WINDOW_TILES,
    workers: int = 2,
    on_empty_year: EmptyYearPolicy = "keep",
    query: Mapping[str, Any] | None = None,
    on_window: Callable[[int, int], None] | None = None,
) -> CubeRef:
    """Build (or resume, or extend by new years) a yearly-composite cube from STAC items.

    Args:
        items: STAC items of every year (``image`` COG asset, optional cloud mask).
        out: The Zarr v3 store to write; an existing slumwatch cube is resumed/extended.
        grid: Output grid (AOI, CRS, resolution, resampling, nodata).
        bands: Band common names to keep (default: all bands of the asset).
        asset: Imagery asset key.
        mask_asset: Cloud-mask asset key (1 = cloud, 0 = clear), or ``None``.
        years: Years to build (default: every year with items).
        tile: Tile grid; chunks are ``(1, nband, tile.size, tile.size)``.
        composite: ``"best"`` (least-cloudy valid pixel first) or ``"median"`` of valid pixels.
        progress: Show a progress bar (rich) on the console.
        reader: Asset reader (default :class:`OdcStacReader`); tests inject faults here.
        window_tiles: Window edge in tiles; a window is the unit of work and of resumption.
        workers: Windows processed concurrently (bounds peak memory).
        on_empty_year: A year without any valid pixel is ``"keep"``-ed (logged, recorded),
            ``"drop"``-ped from the store, or ``"raise"``-s :class:`EmptyYearError`.
        query: The search that produced ``items``, recorded as provenance.
        on_window: Called with ``(done, total)`` after each window (progress in logs).

    Returns:
        A :class:`CubeRef` to the store.

    Raises:
        EmptySearchError: no item, or the AOI lies outside every item.
        GridMismatchError: items disagree on CRS/band count/dtype, or the store has another grid.
        AssetNotFoundError / TruncatedAssetError / AssetReadError: an asset could not be read.
        EmptyYearError: a year has no valid pixel and ``on_empty_year="raise"``.
        CubeError: the store cannot be extended as asked.
    """
    out = Path(out)
    reader = reader if reader is not None else OdcStacReader(threads=1)
    if out.exists() and not (out / "zarr.json").exists() and any(out.iterdir()):
        raise CubeError(f"{out} exists and is not a Zarr store; refusing to write into it")
    existing = _existing_geobox(out)
    plan = _make_plan(
        items=items,
        grid=grid,
        bands=bands,
        asset=asset,
        mask_asset=mask_asset,
        years=years,
        tile=tile,
        window_tiles=window_tiles,
        reader=reader,
        workers=workers,
        existing_geobox=existing,
    )
    if existing is not None:
        _check_store_grid(out, plan)
    if plan.missing_years:
        log.warning("no imagery covering the AOI for years %s", list(plan.missing_years))
    crs = str(plan.geobox.crs)
    footprints = {it.id: _footprint(it, crs) for its in plan.years.values() for it in its}
    h, w = plan.geobox.shape.yx
    log.info(
        "cube %s: %dx%d px at %s m in %s, %d windows x %d years, bands %s",
        out,
        w,
        h,
        grid.resolution,
        crs,
        len(plan.windows),
        len(plan.years),
        [b.name for b in plan.bands],
    )
    bar_ctx: Any = contextlib.nullcontext(None)
    if progress:
        from rich.progress import Progress

        bar_ctx = Progress(transient=True)
    done_summaries: dict[int, YearSummary] = {}
    with bar_ctx as bar:
        for year, year_items in plan.years.items():
            t_index = _append_year(out, plan, year)
            todo = [win for win in plan.windows if _window_done(out, plan, year, t_index, win) is None]
            skipped = len(plan.windows) - len(todo)
            log.info(
                "year %d (%d scenes): %d windows to write, %d already done",
                year,
                len(year_items),
                len(todo),
                skipped,
            )
            task = (
                bar.add_task(f"{year}", total=len(plan.windows), completed=skipped)
                if bar is not None
                else None
            )

            def _cb(
                done: int, total: int, *, _task: Any = task, _skip: int = skipped, _year: int = year
            ) -> None:
                if bar is not None:
                    bar.update(_task, completed=_skip + done)
                if on_window is not None:
                    on_window(done, total)
                if done == total or done % max(1, total // 10) == 0:
                    log.info("year %d: %d/%d windows written", _year, done, total)

            prog = _Progress(total=len(todo), callback=_cb)

            def _run(
                win: TileWindow, *, _year: int = year, _t: int = t_index, _prog: _Progress = prog
            ) -> None:
                _process_window(
                    path=out,
                    plan=plan,
                    year=_year,
                    t_index=_t,
                    window=win,
                    reader=reader,
                    grid=grid,
                    asset=asset,
                    mask_asset=mask_asset,
                    composite=composite,
                    footprints=footprints,
                )
                _prog.step()

            if workers <= 1 or len(todo) <= 1:
                for win in todo:
                    _run(win)
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    for fut in [pool.submit(_run, win) for win in todo]:
                        fut.result()
            summary = _summaries(out, plan, [year])[year]
            if summary.valid_pixels == 0:
                msg = f"year {year}: no valid pixel in the AOI (items {list(summary.item_ids)})"
                if on_empty_year == "raise":
                    _write_root_attrs(out, plan, done_summaries, query=query, composite=composite)
                    raise EmptyYearError(msg, year=year)
                if on_empty_year == "drop":
                    log.warning("%s; dropped from the cube as asked", msg)
                    _truncate_last_year(out, year)
                    continue
                log.warning("%s; kept (all nodata)", msg)
            done_summaries[year] = summary
    _write_root_attrs(out, plan, done_summaries, query=query, composite=composite)
    return CubeRef(path=out)


# --------------------------------------------------------------------------- reading


def open_cube(ref: CubeRef | Path) -> xr.Dataset:
    """Open a cube lazily (dask) with its CRS readable through rioxarray.

    Raises:
        CubeError: the store does not exist or lacks the referenced variable.
    """
    import rioxarray  # noqa: F401

    ref = ref if isinstance(ref, CubeRef) else CubeRef(path=Path(ref))
    if not (Path(ref.path) / "zarr.json").exists():
        raise CubeError(f"no cube at {ref.path}")
    with _quiet_zarr():
        ds = xr.open_zarr(ref.path, consolidated=True)
    if ref.variable not in ds:
        raise CubeError(f"cube {ref.path} has no variable {ref.variable!r} (has {sorted(ds.data_vars)})")
    return ds


def cube_summary(ref: CubeRef | Path) -> list[YearSummary]:
    """Per-year scenes and valid fraction, from the store's provenance attributes."""
    ds = open_cube(ref)
    items = ds.attrs.get(ATTR_ITEMS, {})
    out = []
    for key, info in sorted(ds.attrs.get(ATTR_YEARS, {}).items()):
        out.append(
            YearSummary(
                year=int(key),
                scenes=int(info["scenes"]),
                item_ids=tuple(items.get(key, ())),
                valid_fraction=float(info["valid_fraction"]),
                valid_pixels=int(info["valid_pixels"]),
                pixels=int(info["pixels"]),
            )
        )
    return out


def band_statistics(
    ds: xr.Dataset,
    *,
    low: float = 1.0,
    high: float = 99.0,
    max_samples: int = STAT_SAMPLES,
    max_chunks: int = STAT_MAX_CHUNKS,
    variable: str = "imagery",
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Per-band ``(low, high)`` percentiles over valid pixels, from a bounded random sample.

    At most ``max_chunks`` (time, y, x) chunks are read and at most ``max_samples`` valid
    pixels kept, so the cost does not grow with the cube. Works for any integer or float dtype.

    Raises:
        CubeError: the cube has no valid pixel.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got {low}, {high}")
    img = ds[variable]
    if tuple(img.dims) != DIMS:
        img = img.transpose(*DIMS)
    valid = ds["valid"] if "valid" in ds else (img != NODATA).all("band").astype("uint8")
    nt, nb, h, w = img.shape
    chunks = img.chunks
    cy = chunks[2][0] if chunks else min(h, 512)
    cx = chunks[3][0] if chunks else min(w, 512)
    blocks = [
        (t, i, j) for t in range(nt) for i in range(math.ceil(h / cy)) for j in range(math.ceil(w / cx))
    ]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(blocks))
    per_block = max(1, math.ceil(max_samples / min(len(blocks), max_chunks)))
    samples: list[np.ndarray] = []
    n_have = 0
    for k in order[:max_chunks]:
        t, i, j = blocks[k]
        ys, xs = slice(i * cy, min(h, (i + 1) * cy)), slice(j * cx, min(w, (j + 1) * cx))
        v = np.asarray(valid[t, ys, xs].values, dtype=bool)
        if not v.any():
            continue
        block = np.asarray(img[t, :, ys, xs].values)
        px = block[:, v]
        if px.shape[1] > per_block:
            px = px[:, rng.choice(px.shape[1], size=per_block, replace=False)]
        samples.append(px)
        n_have += px.shape[1]
        if n_have >= max_samples:
            break
    if not samples:
        raise CubeError("band_statistics: the cube has no valid pixel in the sampled chunks")
    allpx = np.concatenate(samples, axis=1).astype("float64")
    names = [str(b) for b in ds["band"].values] if "band" in ds.coords else [f"b{i + 1}" for i in range(nb)]
    lo = np.percentile(allpx, low, axis=1)
    hi = np.percentile(allpx, high, axis=1)
    return {name: (float(lo[b]), float(hi[b])) for b, name in enumerate(names)}
