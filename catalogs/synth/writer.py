"""Write a synthetic city to disk: COGs per year, GeoParquet labels, STAC catalog, truth.json.

Rendering goes window by window (:attr:`SynthSpec.window_size`), each window for every
year in turn, into tiled GeoTIFFs; each is then converted to a Cloud Optimized GeoTIFF
with GDAL's COG driver (which streams from the tiled file). Buildings are generated and
written block by block. Neither a whole scene nor the whole building table is ever held
in memory. See ``docs/architecture.md`` for the output layout.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import rasterio
import rasterio.shutil
import shapely
from rasterio.enums import ColorInterp
from rasterio.windows import Window
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from shapely.geometry import Polygon, box

from slumwatch import __version__
from slumwatch.catalogs.tiling import TileSpec, iter_tiles

from .layout import (
    BASE_INCREMENT,
    DEFAULT_BLOCK_CACHE,
    F_EMERGE,
    FAST_GROWTH_YEARS,
    FAST_INCREMENT,
    NEVER,
    CityLayout,
    Slum,
)
from .render import CLOUD_PRESENT, IMAGE_NODATA, MASK_NODATA, SLUM, Renderer
from .spec import SynthError, SynthSpec
from .stac import YearAssets, write_catalog
from .vectors import GeoParquetWriter, to_crs_coordinates

__all__ = ["SynthCity", "generate_city"]

IMAGERY_DIR = "imagery"
LABELS_DIR = "labels"
MASKS_DIR = "masks"
TMP_DIR = ".synth-tmp"
#: Block size of the intermediate tiled GeoTIFFs and of the COGs.
TMP_BLOCK_PX = 256
COG_BLOCK_PX = 512
#: Buildings are flushed to GeoParquet in batches of about this many rows.
BUILDING_BATCH_ROWS = 100_000
AREA_DECIMALS = 2
_COLOR_INTERP = {
    "red": ColorInterp.red,
    "green": ColorInterp.green,
    "blue": ColorInterp.blue,
    "nir": ColorInterp.undefined,
}


@dataclass(frozen=True)
class SynthCity:
    """Where a generated city lies on disk, and its ground-truth summary.

    Attributes:
        spec: The spec it was generated from.
        root: The output folder.
        catalog: ``root/catalog.json``.
        collection_id: The STAC collection id.
        images: Imagery COG per year.
        cloud_masks: Cloud-mask COG per year.
        label_masks: Slum-mask COG per year.
        slums: ``labels/slums.parquet``.
        buildings: ``labels/buildings.parquet``.
        truth_path: ``truth.json``.
        truth: The content of ``truth.json``.
    """

    spec: SynthSpec
    root: Path
    catalog: Path
    collection_id: str
    images: dict[int, Path]
    cloud_masks: dict[int, Path]
    label_masks: dict[int, Path]
    slums: Path
    buildings: Path
    truth_path: Path
    truth: dict[str, Any] = field(repr=False)

    def item_path(self, year: int) -> Path:
        """Path of the STAC item JSON of ``year``."""
        item_id = self.spec.item_id(year)
        return self.root / self.collection_id / item_id / f"{item_id}.json"


@dataclass
class _YearStats:
    valid_px: int = 0
    cloud_px: int = 0
    slum_px: int = 0
    slum_valid_px: int = 0


@dataclass
class _VectorStats:
    slum_area: dict[int, float]
    slum_count: dict[int, int]
    building_counts: dict[int, dict[str, int]]
    built: dict[int, dict[str, int]]
    removed: dict[int, int]
    slums: list[dict[str, Any]]
    n_buildings: int


def generate_city(spec: SynthSpec, *, out: Path, progress: bool = False) -> SynthCity:
    """Generate the city of ``spec`` under ``out`` (created if needed; existing outputs are replaced).

    Args:
        spec: What to generate.
        out: Output folder.
        progress: Show rich progress bars on stderr.

    Returns:
        The paths of everything written and the ground-truth summary.
    """
    out = Path(out)
    imagery = out / IMAGERY_DIR
    masks = out / LABELS_DIR / MASKS_DIR
    tmp = out / TMP_DIR
    for folder in (imagery, masks, tmp):
        folder.mkdir(parents=True, exist_ok=True)
    layout = CityLayout(spec.seed)
    slums_path = out / LABELS_DIR / "slums.parquet"
    buildings_path = out / LABELS_DIR / "buildings.parquet"
    with _progress(progress) as bar:
        vstats = _write_vectors(spec, layout, slums_path=slums_path, buildings_path=buildings_path, bar=bar)
        ystats = _write_rasters(spec, layout, imagery=imagery, masks=masks, tmp=tmp, bar=bar)
    shutil.rmtree(tmp, ignore_errors=True)

    renderer = Renderer(spec, layout=layout)
    truth = _truth(spec, vstats, ystats, renderer)
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    images = {y: imagery / f"{y}.tif" for y in spec.years}
    clouds = {y: imagery / f"{y}_cloud.tif" for y in spec.years}
    labels = {y: masks / f"{y}.tif" for y in spec.years}
    assets = [
        YearAssets(
            year=y,
            image=images[y],
            cloud_mask=clouds[y],
            label_mask=labels[y],
            cloud_cover=100.0 * ystats[y].cloud_px / max(1, ystats[y].valid_px),
            footprint=renderer.acquisition(y).footprint(width=spec.width, height=spec.height),
        )
        for y in spec.years
    ]
    # the collection folder is ours: drop items of an earlier run (e.g. with other years)
    shutil.rmtree(out / spec.collection_id, ignore_errors=True)
    catalog = write_catalog(
        spec, out=out, years=assets, slums=slums_path, buildings=buildings_path, truth=truth_path
    )
    return SynthCity(
        spec=spec,
        root=out,
        catalog=catalog,
        collection_id=spec.collection_id,
        images=images,
        cloud_masks=clouds,
        label_masks=labels,
        slums=slums_path,
        buildings=buildings_path,
        truth_path=truth_path,
        truth=truth,
    )


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield bar


# -- vectors ---------------------------------------------------------------------------------------
def _write_vectors(
    spec: SynthSpec, layout: CityLayout, *, slums_path: Path, buildings_path: Path, bar: Progress | None
) -> _VectorStats:
    """Stream buildings and slum outlines (clipped to the raster) to GeoParquet; return counts and areas."""
    w_m, h_m = spec.extent_m
    scene = box(0.0, 0.0, w_m, h_m)
    years = spec.years
    indices = layout.block_indices(0.0, 0.0, w_m, h_m)
    cache = len(indices) <= DEFAULT_BLOCK_CACHE
    task = bar.add_task("layout + labels", total=len(indices)) if bar else None
    stats = _VectorStats(
        slum_area={y: 0.0 for y in years},
        slum_count={y: 0 for y in years},
        building_counts={y: {"total": 0, "formal": 0, "informal": 0} for y in years},
        built={y: {"formal": 0, "informal": 0} for y in years},
        removed={y: 0 for y in years},
        slums=[],
        n_buildings=0,
    )
    shift = {"origin_easting": spec.origin_easting, "origin_northing": spec.origin_northing}
    building_fields = [
        ("building_id", pa.int64()),
        ("shape_type", pa.string()),
        ("year_built", pa.int32()),
        ("year_removed", pa.int32()),
        ("informal", pa.bool_()),
        ("height_m", pa.float32()),
        ("slum_id", pa.int64()),
    ]
    slum_fields = [("year", pa.int32()), ("slum_id", pa.int64()), ("area_m2", pa.float64())]
    batch: list[dict[str, Any]] = []
    batch_rows = 0
    with (
        GeoParquetWriter(
            buildings_path, fields=building_fields, epsg=spec.epsg, geometry_types=["Polygon"]
        ) as bw,
        GeoParquetWriter(slums_path, fields=slum_fields, epsg=spec.epsg, geometry_types=["Polygon"]) as sw,
    ):
        for i, j in indices:
            blk = layout.block(i, j) if cache else layout.build_block(i, j)
            b = blk.buildings
            if len(b):
                sel = np.nonzero(shapely.intersects(scene, b.geometry))[0]
                part = b.take(sel)
                if len(part):
                    for y in years:
                        ex = part.exists(y)
                        n_inf = int((ex & part.informal).sum())
                        n_all = int(ex.sum())
                        counts = stats.building_counts[y]
                        counts["total"] += n_all
                        counts["informal"] += n_inf
                        counts["formal"] += n_all - n_inf
                        stats.built[y]["informal"] += int(((part.year_built == y) & part.informal).sum())
                        stats.built[y]["formal"] += int(((part.year_built == y) & ~part.informal).sum())
                        stats.removed[y] += int((part.year_removed == y).sum())
                    batch.append(
                        {
                            "geometry": to_crs_coordinates(part.geometry, **shift),
                            "building_id": part.building_id,
                            "shape_type": part.shape_type,
                            "year_built": part.year_built,
                            "year_removed": part.year_removed,
                            "informal": part.informal,
                            "height_m": np.round(part.height, 2),
                            "slum_id": part.slum_id,
                        }
                    )
                    batch_rows += len(part)
                    stats.n_buildings += len(part)
            if batch_rows >= BUILDING_BATCH_ROWS:
                _flush(bw, batch)
                batch, batch_rows = [], 0
            if blk.slum is not None:
                _write_slum(blk.slum, scene=scene, years=years, writer=sw, stats=stats, shift=shift)
            if bar is not None and task is not None:
                bar.advance(task)
        _flush(bw, batch)
    return stats


def _flush(writer: GeoParquetWriter, batch: list[dict[str, Any]]) -> None:
    if not batch:
        return
    geoms = np.concatenate([b["geometry"] for b in batch])
    columns: dict[str, Any] = {k: np.concatenate([b[k] for b in batch]) for k in batch[0] if k != "geometry"}
    columns["shape_type"] = columns["shape_type"].tolist()
    removed = columns["year_removed"]
    columns["year_removed"] = (removed, removed == NEVER)
    slum_id = columns["slum_id"]
    columns["slum_id"] = (slum_id, slum_id < 0)
    writer.write(geoms, columns)


def _write_slum(
    slum: Slum,
    *,
    scene: Polygon,
    years: tuple[int, ...],
    writer: GeoParquetWriter,
    stats: _VectorStats,
    shift: dict[str, float],
) -> None:
    """Append a slum's yearly outlines (clipped to the scene, one row per polygon part) and tally areas."""
    touched = False
    for y in years:
        poly = slum.polygon(y)
        if poly is None:
            continue
        clipped = poly.intersection(scene)
        parts = [
            g
            for g in shapely.get_parts(np.asarray([clipped], dtype=object))
            if g.geom_type == "Polygon" and g.area > 0
        ]
        if not parts:
            continue
        touched = True
        geoms = np.asarray(parts, dtype=object)
        areas = shapely.area(geoms)
        stats.slum_area[y] += float(areas.sum())
        stats.slum_count[y] += 1
        writer.write(
            to_crs_coordinates(geoms, **shift),
            {
                "year": np.full(len(parts), y, dtype=np.int32),
                "slum_id": np.full(len(parts), slum.slum_id, dtype=np.int64),
                "area_m2": np.round(areas, AREA_DECIMALS),
            },
        )
    if touched:
        stats.slums.append(
            {
                "slum_id": int(slum.slum_id),
                "emerge_year": int(slum.emerge_year),
                "clear_year": slum.clear_year,
                "speed": round(slum.speed, 4),
            }
        )


# -- rasters ---------------------------------------------------------------------------------------
def _profile(
    spec: SynthSpec, *, count: int, dtype: str, nodata: int, photometric_rgb: bool
) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": spec.width,
        "height": spec.height,
        "count": count,
        "dtype": dtype,
        "crs": spec.crs,
        "transform": spec.transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": TMP_BLOCK_PX,
        "blockysize": TMP_BLOCK_PX,
        "compress": "zstd",
        "zstd_level": 1,
        "bigtiff": "if_safer",
        "interleave": "pixel",
    }
    if photometric_rgb:
        profile["photometric"] = "rgb"
    return profile


def _write_rasters(
    spec: SynthSpec, layout: CityLayout, *, imagery: Path, masks: Path, tmp: Path, bar: Progress | None
) -> dict[int, _YearStats]:
    years = spec.years
    renderer = Renderer(spec, layout=layout)
    tiles = list(iter_tiles(TileSpec(size=spec.window_size), height=spec.height, width=spec.width))
    task = bar.add_task(f"render {len(years)} years", total=len(tiles) * len(years)) if bar else None
    stats = {y: _YearStats() for y in years}
    tmp_paths: dict[tuple[int, str], Path] = {}
    datasets: dict[tuple[int, str], Any] = {}
    image_profile = _profile(
        spec, count=spec.count, dtype=spec.dtype, nodata=IMAGE_NODATA, photometric_rgb=True
    )
    mask_profile = _profile(spec, count=1, dtype="uint8", nodata=MASK_NODATA, photometric_rgb=False)
    try:
        for y in years:
            for kind, profile in (("image", image_profile), ("cloud", mask_profile), ("label", mask_profile)):
                path = tmp / f"{y}_{kind}.tif"
                tmp_paths[(y, kind)] = path
                ds = rasterio.open(path, "w", **profile)
                datasets[(y, kind)] = ds
                ds.update_tags(generator="slumwatch.catalogs.synth", seed=str(spec.seed), year=str(y))
                if kind == "image":
                    ds.colorinterp = [_COLOR_INTERP[name] for name in spec.band_names]
                    for b, name in enumerate(spec.band_names, start=1):
                        ds.set_band_description(b, name)
                else:
                    ds.set_band_description(1, "cloud" if kind == "cloud" else "slum")
        for tile in tiles:
            rendered = renderer.render_years(
                years, row_off=tile.row_off, col_off=tile.col_off, height=tile.height, width=tile.width
            )
            window = Window(tile.col_off, tile.row_off, tile.width, tile.height)
            for y, rw in zip(years, rendered, strict=True):
                datasets[(y, "image")].write(rw.image, window=window)
                datasets[(y, "cloud")].write(rw.cloud, 1, window=window)
                datasets[(y, "label")].write(rw.label, 1, window=window)
                st = stats[y]
                st.valid_px += int(rw.valid.sum())
                st.cloud_px += int((rw.cloud == CLOUD_PRESENT).sum())
                st.slum_px += int(rw.slum.sum())
                st.slum_valid_px += int((rw.label == SLUM).sum())
                if bar is not None and task is not None:
                    bar.advance(task)
    finally:
        for ds in datasets.values():
            ds.close()
    convert = bar.add_task("write COGs", total=len(tmp_paths)) if bar else None
    for (y, kind), path in tmp_paths.items():
        if kind == "image":
            dst, resampling, predictor = imagery / f"{y}.tif", "AVERAGE", "YES"
        elif kind == "cloud":
            dst, resampling, predictor = imagery / f"{y}_cloud.tif", "NEAREST", "NO"
        else:
            dst, resampling, predictor = masks / f"{y}.tif", "NEAREST", "NO"
        _to_cog(path, dst, resampling=resampling, predictor=predictor)
        path.unlink()
        if bar is not None and convert is not None:
            bar.advance(convert)
    return stats


def _to_cog(src: Path, dst: Path, *, resampling: str, predictor: str) -> None:
    """Convert a tiled GeoTIFF to a COG (GDAL streams it; nothing is loaded whole)."""
    if dst.exists():
        dst.unlink()
    try:
        rasterio.shutil.copy(
            src,
            dst,
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR=predictor,
            BLOCKSIZE=COG_BLOCK_PX,
            OVERVIEW_RESAMPLING=resampling,
            BIGTIFF="IF_SAFER",
        )
    except rasterio.errors.RasterioError as exc:  # pragma: no cover - GDAL failure
        raise SynthError(f"could not write COG {dst}: {exc}") from exc


# -- truth -----------------------------------------------------------------------------------------
def _truth(
    spec: SynthSpec, vs: _VectorStats, ys: dict[int, _YearStats], renderer: Renderer
) -> dict[str, Any]:
    px_area = spec.resolution**2
    n_px = spec.width * spec.height

    def by_year(fn: Any) -> dict[str, Any]:
        return {str(y): fn(y) for y in spec.years}

    acquisitions = {}
    for y in spec.years:
        acq = renderer.acquisition(y)
        acquisitions[str(y)] = {
            "sun_azimuth_deg": round(acq.sun_azimuth_deg, 3),
            "sun_elevation_deg": round(acq.sun_elevation_deg, 3),
            "haze": round(acq.haze, 4),
            "gain": [round(g, 4) for g in acq.gain[: spec.count]],
            "offset": [round(o, 4) for o in acq.offset[: spec.count]],
            "swath_edges": [e.side for e in acq.swath],
        }
    return {
        "generator": "slumwatch.catalogs.synth",
        "software_version": __version__,
        "name": spec.name,
        "seed": spec.seed,
        "collection_id": spec.collection_id,
        "crs": spec.crs,
        "resolution": spec.resolution,
        "width": spec.width,
        "height": spec.height,
        "transform": list(spec.transform)[:6],
        "bounds": list(spec.bounds),
        "bands": list(spec.band_names),
        "dtype": spec.dtype,
        "years": list(spec.years),
        "fast_growth_years": [y for y in FAST_GROWTH_YEARS if y in spec.years],
        "growth_schedule": {
            "fraction_at_emergence": F_EMERGE,
            "base_increment_per_year": BASE_INCREMENT,
            "fast_increment_per_year": FAST_INCREMENT,
            "fast_growth_years": list(FAST_GROWTH_YEARS),
            "rule": "f(year) = min(1, fraction_at_emergence + speed * increments since emergence); "
            "outline = the slum's star polygon scaled by f around its seed point, clipped to its block",
        },
        "slum_area_m2": by_year(lambda y: round(vs.slum_area[y], AREA_DECIMALS)),
        "slum_mask_area_m2": by_year(lambda y: round(ys[y].slum_px * px_area, AREA_DECIMALS)),
        "slum_mask_valid_area_m2": by_year(lambda y: round(ys[y].slum_valid_px * px_area, AREA_DECIMALS)),
        "valid_fraction": by_year(lambda y: round(ys[y].valid_px / n_px, 6)),
        "cloud_fraction": by_year(lambda y: round(ys[y].cloud_px / max(1, ys[y].valid_px), 6)),
        "slum_count": by_year(lambda y: vs.slum_count[y]),
        "building_counts": by_year(lambda y: vs.building_counts[y]),
        "buildings_built": by_year(lambda y: vs.built[y]),
        "buildings_removed": by_year(lambda y: vs.removed[y]),
        "n_buildings": vs.n_buildings,
        "slums": vs.slums,
        "acquisitions": acquisitions,
        "conventions": {
            "building_exists": "year_built <= year and (year_removed is null or year < year_removed)",
            "slum_area_m2": "area of the slum polygons clipped to the raster extent",
            "slum_mask_area_m2": "pixels with their centre in a slum polygon (raster extent) x pixel area",
            "slum_mask_valid_area_m2": "slum pixels inside the imaged scene (mask value 1) x pixel area",
            "masks": "labels/masks/<year>.tif: 1 slum, 0 non-slum, 255 outside the imaged scene",
        },
    }
