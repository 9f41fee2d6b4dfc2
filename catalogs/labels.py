"""Put slum labels onto a cube's grid: a ``labels`` (time, y, x) uint8 variable in the same store.

Values: ``0`` non-slum, ``1`` slum, ``255`` ignore (outside the labelled extent, a year
without labels, or a pixel whose imagery is not usable).

Sources:

- vectors (GeoParquet, GeoJSON, Shapefile, GeoPackage, KML -- anything geopandas reads):
  polygons are slums; a ``year`` column says for which year a polygon holds (without it,
  every polygon holds for every year when ``all_years_if_missing``). The labelled extent
  is the cube (optionally narrowed by ``extent``): outside polygons is non-slum.
- raster masks: a folder of per-year files whose name holds the year
  (``labels/masks/2019.tif``), or one raster used for every year; values 1/0/255,
  reprojected with nearest neighbour; 255 outside the mask.

Work is done window by window (the cube's window grid) so memory stays flat, and each
window is written as whole chunks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine

from slumwatch.catalogs.cube import (
    ATTR_GRID,
    SPATIAL_REF,
    CubeRef,
    _consolidate,
    _open_group,
    _quiet_zarr,
    open_cube,
)
from slumwatch.catalogs.errors import LabelError
from slumwatch.catalogs.tiling import TileSpec, iter_tiles

__all__ = ["IGNORE", "NON_SLUM", "SLUM", "rasterize_labels"]

log = logging.getLogger(__name__)

#: Label values.
NON_SLUM, SLUM, IGNORE = 0, 1, 255
#: Suffixes read as vectors / rasters.
VECTOR_SUFFIXES = frozenset(
    {".parquet", ".geoparquet", ".geojson", ".json", ".shp", ".gpkg", ".kml", ".fgb", ".zip"}
)
RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".vrt", ".jp2", ".img"})
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")


def _read_vectors(source: Path) -> Any:
    import geopandas as gpd

    try:
        if source.suffix.lower() in {".parquet", ".geoparquet"}:
            return gpd.read_parquet(source)
        if source.suffix.lower() == ".kml":
            return gpd.read_file(source, driver="KML")
        return gpd.read_file(source)
    except Exception as err:
        raise LabelError(f"cannot read label vectors {source}: {err}") from err


def _year_rasters(source: Path) -> dict[int | None, Path]:
    if source.is_dir():
        found: dict[int | None, Path] = {}
        for p in sorted(source.iterdir()):
            if p.suffix.lower() in RASTER_SUFFIXES:
                m = _YEAR.search(p.stem)
                if m:
                    found[int(m.group(1))] = p
        if not found:
            raise LabelError(f"label folder {source} holds no raster named by year (e.g. 2019.tif)")
        return found
    return {None: source}


def rasterize_labels(
    *,
    cube: CubeRef,
    source: Path,
    year_column: str = "year",
    all_years_if_missing: bool = True,
    extent: Mapping[str, Any] | None = None,
    mask_invalid: bool = True,
) -> None:
    """Rasterize/reproject slum labels onto ``cube``'s grid into its ``labels`` variable.

    Args:
        cube: The cube (built by :func:`~slumwatch.catalogs.cube.build_cube`).
        source: Vector file, raster file, or folder of per-year rasters.
        year_column: Column of the vector file giving the year a polygon holds for.
        all_years_if_missing: Without ``year_column`` (or a raster without year), apply
            the labels to every year; otherwise that is an error.
        extent: GeoJSON geometry (WGS84) of the labelled extent for vectors; ignore outside.
        mask_invalid: Set ``255`` where the cube's ``valid`` is 0 (nodata/cloud imagery).

    Raises:
        LabelError: unreadable source, missing year column, no overlap with the cube.
    """
    source = Path(source)
    if not source.exists():
        raise LabelError(f"label source {source} does not exist")
    ds = open_cube(cube)
    grid = ds.attrs.get(ATTR_GRID)
    if grid is None:
        raise LabelError(f"{cube.path} is not a slumwatch cube (no {ATTR_GRID})")
    crs = CRS.from_user_input(grid["crs"])
    transform = Affine(*grid["transform"])
    height, width = (int(v) for v in grid["shape"])
    years = [int(y) for y in ds["time"].dt.year.values]
    tile = int(grid["tile"])
    window = int(grid["window"])

    is_raster = source.is_dir() or source.suffix.lower() in RASTER_SUFFIXES
    if is_raster:
        rasters = _year_rasters(source)
        if None in rasters and not all_years_if_missing:
            raise LabelError(f"raster {source} has no year and all_years_if_missing is False")
        year_src: dict[int, Path | None] = {y: rasters.get(y, rasters.get(None)) for y in years}
        missing = [y for y, p in year_src.items() if p is None]
        if missing:
            log.warning("no label raster for years %s in %s; labels are 255 (ignore) there", missing, source)
        make: _RasterLabels | _VectorLabels = _RasterLabels(year_src)
    else:
        gdf = _read_vectors(source)
        if gdf.crs is None:
            raise LabelError(f"label vectors {source} have no CRS")
        gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].to_crs(crs)
        if year_column not in gdf.columns:
            if not all_years_if_missing:
                raise LabelError(
                    f"label vectors {source} have no {year_column!r} column (columns: {list(gdf.columns)})"
                )
            log.info("labels %s have no %r column: applied to every year", source, year_column)
            per_year = {y: gdf for y in years}
            labelled_years = set(years)
        else:
            col = gdf[year_column].astype("Int64")
            labelled_years = {int(y) for y in col.dropna().unique()}
            per_year = {y: gdf[col == y] for y in years}
        unlabelled = [y for y in years if y not in labelled_years]
        if unlabelled:
            log.warning(
                "no label polygons for years %s in %s; labels are 255 (ignore) there", unlabelled, source
            )
        ext_geom = None
        if extent is not None:
            import geopandas as gpd
            import shapely.geometry

            ext_geom = gpd.GeoSeries([shapely.geometry.shape(extent)], crs="EPSG:4326").to_crs(crs).iloc[0]
        make = _VectorLabels(per_year, labelled_years, ext_geom)

    _ensure_labels_var(cube.path, ds, tile=tile)
    with _quiet_zarr():
        group = _open_group(cube.path, mode="r+")
        labels_arr = group["labels"]
        valid_arr = group["valid"] if mask_invalid and "valid" in group else None
        total_slum = {y: 0 for y in years}
        full = (transform, width, height)
        try:
            for t_index, year in enumerate(years):
                for win in iter_tiles(TileSpec(window), height=height, width=width):
                    rows, cols = win.core_slices
                    block = make.window(year, rows=rows, cols=cols, crs=crs, full=full)
                    if valid_arr is not None:
                        block = np.where(
                            np.asarray(valid_arr[t_index, rows, cols]) == 1, block, IGNORE
                        ).astype("uint8")
                    labels_arr[t_index, rows, cols] = block
                    total_slum[year] += int((block == SLUM).sum())
        finally:
            make.close()
        group["labels"].attrs.update(
            {
                "long_name": "0 non-slum, 1 slum, 255 ignore",
                "source": str(source),
                "flag_values": [NON_SLUM, SLUM, IGNORE],
                "grid_mapping": SPATIAL_REF,
                "coordinates": SPATIAL_REF,
                "slum_pixels": {str(k): v for k, v in total_slum.items()},
            }
        )
    _consolidate(cube.path)
    log.info("labels from %s written to %s: slum pixels per year %s", source, cube.path, total_slum)


def _ensure_labels_var(path: Path, ds: xr.Dataset, *, tile: int) -> None:
    """Add an all-255 ``labels`` variable (metadata only) when the store has none."""
    if "labels" in ds:
        return
    import dask.array as da

    nt = ds.sizes["time"]
    h, w = ds.sizes["y"], ds.sizes["x"]
    lab = xr.Dataset(
        {"labels": (("time", "y", "x"), da.full((nt, h, w), IGNORE, dtype="uint8", chunks=(1, tile, tile)))},
        coords={"time": ds["time"], "y": ds["y"], "x": ds["x"]},
    )
    lab["labels"].attrs["grid_mapping"] = SPATIAL_REF
    lab.attrs.update(ds.attrs)  # to_zarr(mode="a") rewrites the root attributes
    lab["labels"].encoding["coordinates"] = SPATIAL_REF
    with _quiet_zarr():
        lab[["labels"]].drop_vars(["time", "y", "x"]).to_zarr(
            path,
            mode="a",
            compute=False,
            consolidated=True,
            encoding={"labels": {"_FillValue": None, "chunks": (1, tile, tile), "fill_value": IGNORE}},
        )


class _VectorLabels:
    def __init__(self, per_year: Mapping[int, Any], labelled: set[int], extent: Any) -> None:
        self.per_year = per_year
        self.labelled = labelled
        self.extent = extent

    def close(self) -> None:
        """Nothing to release."""

    def window(
        self, year: int, *, rows: slice, cols: slice, crs: CRS, full: tuple[Affine, int, int]
    ) -> np.ndarray:
        from rasterio.features import geometry_mask, rasterize
        from rasterio.transform import array_bounds

        shape = (rows.stop - rows.start, cols.stop - cols.start)
        transform = full[0] @ Affine.translation(cols.start, rows.start)
        if year not in self.labelled:
            return np.full(shape, IGNORE, dtype="uint8")
        gdf = self.per_year[year]
        left, bottom, right, top = array_bounds(shape[0], shape[1], transform)
        hits = gdf.sindex.query(_box(left, bottom, right, top)) if len(gdf) else []
        geoms = [g for g in gdf.geometry.iloc[list(hits)] if g is not None and not g.is_empty]
        out = np.full(shape, NON_SLUM, dtype="uint8")
        if geoms:
            out = rasterize(
                [(g, SLUM) for g in geoms], out_shape=shape, transform=transform, fill=NON_SLUM, dtype="uint8"
            )
        if self.extent is not None:
            outside = geometry_mask([self.extent], out_shape=shape, transform=transform, invert=False)
            out[outside] = IGNORE
        return out


def _box(left: float, bottom: float, right: float, top: float) -> Any:
    import shapely.geometry

    return shapely.geometry.box(left, bottom, right, top)


class _RasterLabels:
    """Per-year rasters warped (nearest) onto the cube grid through a WarpedVRT, read window by window."""

    def __init__(self, year_src: Mapping[int, Path | None]) -> None:
        self.year_src = year_src
        self._open: dict[int, tuple[Any, Any]] = {}

    def close(self) -> None:
        for vrt, src in self._open.values():
            vrt.close()
            src.close()
        self._open.clear()

    def _vrt(self, year: int, *, crs: CRS, full: tuple[Affine, int, int]) -> Any:
        import rasterio
        from rasterio.vrt import WarpedVRT

        if year not in self._open:
            for old in list(self._open):
                vrt, src = self._open.pop(old)
                vrt.close()
                src.close()
            path = self.year_src[year]
            try:
                src = rasterio.open(path)
            except Exception as err:
                raise LabelError(f"cannot open label raster {path}: {err}") from err
            if src.crs is None:
                src.close()
                raise LabelError(f"label raster {path} has no CRS")
            transform, width, height = full
            vrt = WarpedVRT(
                src,
                crs=crs,
                transform=transform,
                width=width,
                height=height,
                resampling=Resampling.nearest,
                src_nodata=src.nodata if src.nodata is not None else IGNORE,
                nodata=IGNORE,
            )
            self._open[year] = (vrt, src)
        return self._open[year][0]

    def window(
        self, year: int, *, rows: slice, cols: slice, crs: CRS, full: tuple[Affine, int, int]
    ) -> np.ndarray:
        from rasterio.windows import Window

        shape = (rows.stop - rows.start, cols.stop - cols.start)
        if self.year_src.get(year) is None:
            return np.full(shape, IGNORE, dtype="uint8")
        vrt = self._vrt(year, crs=crs, full=full)
        try:
            out = vrt.read(1, window=Window(cols.start, rows.start, shape[1], shape[0])).astype("uint8")
        except Exception as err:
            raise LabelError(f"cannot read label raster {self.year_src[year]}: {err}") from err
        bad = (out != NON_SLUM) & (out != SLUM) & (out != IGNORE)
        if bad.any():
            raise LabelError(
                f"label raster {self.year_src[year]} holds values other than 0/1/255: "
                f"{np.unique(out[bad])[:5]}"
            )
        return out


def label_years(ds: xr.Dataset) -> Sequence[int]:
    """Years of the cube's time axis (convenience for callers)."""
    return [int(y) for y in ds["time"].dt.year.values]
