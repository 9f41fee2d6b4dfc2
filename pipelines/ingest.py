"""Prefect flow ``ingest``: STAC search -> yearly-composite Zarr cube (+ labels) for a city.

The flow only orchestrates; every task calls one :mod:`slumwatch.catalogs` function and
carries many tiles (a task builds one *year*: all its windows), never one task per tile.
Tasks retry transient failures (HTTP 5xx/429, timeouts, I/O); typed data errors (404
assets, grid mismatches, empty searches, truncated files) fail at once. Because the cube
is resumable, a retried or re-run year only rewrites its unfinished windows.

A Markdown artifact ``ingest-summary`` reports the years found, scenes and valid-pixel
fraction per year and the cube path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import pystac
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["IngestParams", "IngestResult", "YearRow", "ingest", "run_ingest"]

#: Retries of a task on a transient failure, and the delays between them (seconds).
TASK_RETRIES = 3
TASK_RETRY_DELAYS_S: list[float] = [2.0, 10.0, 30.0]
#: Artifact key of the run summary.
SUMMARY_KEY = "ingest-summary"


class IngestParams(BaseModel):
    """Parameters of an ingest run. Give at most one of ``bbox``, ``aoi``, ``city``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    catalog: str = Field(description="STAC API URL, or a static catalog.json (path or URL).")
    out: Path = Field(description="Cube store to write (resumed when it exists).")
    bbox: tuple[float, float, float, float] | None = Field(None, description="WGS84 west,south,east,north.")
    aoi: Path | None = Field(None, description="AOI file (GeoJSON, GeoParquet, ...).")
    city: str | None = Field(None, description="A city of the bundled table (catalogs/data/cities.csv).")
    first_year: int = Field(2014, ge=1980, le=2100)
    last_year: int = Field(2024, ge=1980, le=2100)
    collections: list[str] | None = None
    max_cloud_cover: float | None = Field(None, ge=0, le=100)
    resolution: float = Field(0.6, gt=0)
    crs: str | None = Field(None, description="Output CRS; default the UTM zone of the AOI.")
    bands: list[str] | None = None
    composite: Literal["best", "median"] = "best"
    labels: Path | None = None
    tile_size: int = Field(512, gt=0)
    window_tiles: int = Field(4, gt=0)
    workers: int = Field(2, gt=0)
    on_empty_year: Literal["keep", "drop", "raise"] = "keep"
    token_secret: str | None = Field(None, description="Prefect Secret block holding a STAC bearer token.")

    @field_validator("bbox")
    @classmethod
    def _bbox_order(
        cls, v: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if v is not None and not (v[0] < v[2] and v[1] < v[3]):
            raise ValueError(f"bbox {v} is not west,south,east,north")
        return v

    @model_validator(mode="after")
    def _one_area(self) -> IngestParams:
        given = [name for name in ("bbox", "aoi", "city") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of bbox, aoi, city; got {given}")
        if self.first_year > self.last_year:
            raise ValueError(f"first_year {self.first_year} > last_year {self.last_year}")
        return self

    @property
    def years(self) -> list[int]:
        """The requested years."""
        return list(range(self.first_year, self.last_year + 1))

    @property
    def datetime(self) -> str:
        """The search interval."""
        return f"{self.first_year}-01-01/{self.last_year}-12-31"


class YearRow(BaseModel):
    """One year of the run summary."""

    year: int
    scenes: int
    valid_fraction: float
    item_ids: list[str]


class IngestResult(BaseModel):
    """What an ingest run produced."""

    cube: Path
    years: list[YearRow]
    missing_years: list[int]
    labels: bool
    summary_markdown: str


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only failures that may pass: HTTP/API errors, generic read errors, OS errors."""
    from slumwatch.catalogs.errors import (
        AssetNotFoundError,
        AssetReadError,
        CatalogError,
        StacApiError,
    )

    try:
        state.result()
    except AssetNotFoundError:
        return False
    except StacApiError as err:
        return err.status_code is None or err.status_code == 429 or err.status_code >= 500
    except AssetReadError:
        return True
    except CatalogError:
        return False
    except (OSError, TimeoutError, ConnectionError):
        return True
    except Exception:
        return False
    return False


@task(
    retries=TASK_RETRIES,
    retry_delay_seconds=TASK_RETRY_DELAYS_S,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def resolve_area(params: IngestParams) -> dict[str, Any]:
    """The search area: ``{"bbox": ...}`` / ``{"intersects": ...}`` / ``{}`` (whole catalog)."""
    from slumwatch.catalogs.search import city_bbox, load_aoi

    if params.bbox is not None:
        return {"bbox": tuple(params.bbox)}
    if params.city is not None:
        return {"bbox": city_bbox(params.city)}
    if params.aoi is not None:
        return {"intersects": load_aoi(params.aoi)}
    return {}


@task(
    retries=TASK_RETRIES,
    retry_delay_seconds=TASK_RETRY_DELAYS_S,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def search(params: IngestParams, area: dict[str, Any]) -> list[pystac.Item]:
    """Search the catalog (auth from the environment or a Prefect secret; never logged)."""
    from slumwatch.catalogs.search import item_interval, search_items

    logger = get_run_logger()
    headers: dict[str, str] = {}
    if params.token_secret:
        from prefect.blocks.system import Secret

        secret: Any = Secret.load(params.token_secret)  # sync in a sync task
        headers["Authorization"] = f"Bearer {secret.get()}"
    items = search_items(
        catalog=params.catalog,
        bbox=area.get("bbox"),
        intersects=area.get("intersects"),
        datetime=params.datetime,
        collections=params.collections,
        max_cloud_cover=params.max_cloud_cover,
        headers=headers,
    )
    per_year: dict[int, int] = {}
    for it in items:
        year = item_interval(it)[0].year
        per_year[year] = per_year.get(year, 0) + 1
    logger.info(
        "found %d items in %s: per year %s", len(items), params.catalog, dict(sorted(per_year.items()))
    )
    return items


@task(
    retries=TASK_RETRIES,
    retry_delay_seconds=TASK_RETRY_DELAYS_S,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def build_year(params: IngestParams, area: dict[str, Any], items: list[pystac.Item], year: int) -> None:
    """Composite one year (all its windows) into the cube; resumes unfinished windows."""
    from slumwatch.catalogs.cube import GridSpec, build_cube
    from slumwatch.catalogs.tiling import TileSpec

    logger = get_run_logger()

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            logger.info("year %d: %d/%d windows", year, done, total)

    grid = GridSpec(
        bbox=area.get("bbox"),
        aoi=area.get("intersects"),
        crs=params.crs,
        resolution=params.resolution,
    )
    build_cube(
        items=items,
        out=params.out,
        grid=grid,
        bands=params.bands,
        years=[year],
        tile=TileSpec(params.tile_size),
        composite=params.composite,
        progress=False,
        window_tiles=params.window_tiles,
        workers=params.workers,
        on_empty_year=params.on_empty_year,
        query=_query(params),
        on_window=progress,
    )


def _query(params: IngestParams) -> dict[str, Any]:
    q = params.model_dump(mode="json", exclude={"token_secret", "out", "workers"})
    return {k: v for k, v in q.items() if v is not None}


@task(
    retries=TASK_RETRIES,
    retry_delay_seconds=TASK_RETRY_DELAYS_S,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def add_labels(params: IngestParams) -> None:
    """Rasterize the labels onto the cube grid (window by window)."""
    from slumwatch.catalogs.cube import CubeRef
    from slumwatch.catalogs.labels import rasterize_labels

    assert params.labels is not None
    rasterize_labels(cube=CubeRef(path=params.out), source=params.labels)


@task(cache_policy=NO_CACHE)
def summarize(params: IngestParams, requested: list[int]) -> IngestResult:
    """Per-year scenes / valid fraction from the cube, published as a Markdown artifact."""
    from slumwatch.catalogs.cube import CubeRef, cube_summary

    rows = [
        YearRow(year=s.year, scenes=s.scenes, valid_fraction=s.valid_fraction, item_ids=list(s.item_ids))
        for s in cube_summary(CubeRef(path=params.out))
    ]
    found = {r.year for r in rows}
    missing = [y for y in requested if y not in found]
    lines = [
        f"# Ingest summary: `{params.out}`",
        "",
        f"- catalog: `{params.catalog}`",
        f"- area: {params.city or params.bbox or params.aoi or 'catalog extent'}",
        f"- years found: {', '.join(str(r.year) for r in rows) or 'none'}",
        f"- years without imagery: {', '.join(map(str, missing)) or 'none'}",
        f"- labels: {params.labels or 'none'}",
        "",
        "| year | scenes | valid pixels |",
        "|---:|---:|---:|",
        *[f"| {r.year} | {r.scenes} | {r.valid_fraction:.1%} |" for r in rows],
    ]
    markdown = "\n".join(lines)
    create_markdown_artifact(key=SUMMARY_KEY, markdown=markdown, description=f"ingest into {params.out}")
    return IngestResult(
        cube=params.out,
        years=rows,
        missing_years=missing,
        labels=params.labels is not None,
        summary_markdown=markdown,
    )


@flow(name="ingest", log_prints=True)
def ingest(params: IngestParams) -> IngestResult:
    """Search a STAC catalog and build (or resume) a multi-year cube, then add labels."""
    logger = get_run_logger()
    area = resolve_area(params)
    items = search(params, area)
    from slumwatch.catalogs.search import item_interval

    years_with_items = sorted({y for y in (item_interval(it)[0].year for it in items) if y in params.years})
    logger.info("building %d years into %s", len(years_with_items), params.out)
    for year in years_with_items:  # sequential: years are appended along time in order
        build_year(params, area, items, year)
    if params.labels is not None:
        add_labels(params)
    return summarize(params, params.years)


def run_ingest(params: IngestParams) -> IngestResult:
    """Run the flow (convenience for the CLI and notebooks)."""
    logging.getLogger("slumwatch").setLevel(logging.INFO)
    return ingest(params)
