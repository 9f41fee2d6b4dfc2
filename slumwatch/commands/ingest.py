"""``slumwatch ingest``: STAC catalog -> multi-year Zarr cube (+ labels) for a bbox, AOI file or city."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` command to ``app``."""
    app.command("ingest")(ingest)


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    if len(parts) != 4:
        raise typer.BadParameter(f"--bbox wants W,S,E,N (4 numbers), got {text!r}")
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError as err:
        raise typer.BadParameter(f"--bbox wants numbers, got {text!r}") from err
    return w, s, e, n


def ingest(
    catalog: str = typer.Option(
        ..., "--catalog", help="STAC API URL, or a static catalog.json (path or URL)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Cube store to write, e.g. city.zarr (resumed if it exists)."
    ),
    bbox: str | None = typer.Option(None, "--bbox", help="WGS84 W,S,E,N."),
    aoi: Path | None = typer.Option(None, "--aoi", help="AOI file (GeoJSON, GeoParquet, Shapefile, KML)."),
    city: str | None = typer.Option(None, "--city", help="A bundled city name, e.g. Nairobi."),
    years: str = typer.Option("2014-2024", "--years", help="Year range, e.g. 2014-2024 or 2019."),
    labels: Path | None = typer.Option(None, "--labels", help="Slum polygons or a folder of per-year masks."),
    resolution: float = typer.Option(0.6, "--resolution", help="Output pixel size in metres."),
    collections: str | None = typer.Option(None, "--collections", help="Comma-separated collection ids."),
    max_cloud: float | None = typer.Option(None, "--max-cloud", help="Highest eo:cloud_cover (percent)."),
    composite: str = typer.Option("best", "--composite", help="best (least-cloudy valid pixel) or median."),
    crs: str | None = typer.Option(None, "--crs", help="Output CRS (default: UTM zone of the AOI)."),
    tile_size: int = typer.Option(512, "--tile-size", help="Chunk/tile edge in pixels."),
    workers: int = typer.Option(2, "--workers", help="Windows processed concurrently."),
) -> None:
    """Search a STAC catalog and build a yearly-composite Zarr cube (crash-safe, resumable)."""
    from rich.console import Console
    from rich.table import Table

    from slumwatch.config import ConfigError, parse_years

    console = Console()
    try:
        yr = parse_years(years)
        from pydantic import ValidationError

        from slumwatch.pipelines.ingest import IngestParams

        params = IngestParams(
            catalog=catalog,
            out=out,
            bbox=_parse_bbox(bbox) if bbox else None,
            aoi=aoi,
            city=city,
            first_year=yr.first,
            last_year=yr.last,
            collections=[c for c in collections.split(",") if c] if collections else None,
            max_cloud_cover=max_cloud,
            resolution=resolution,
            composite=composite,  # type: ignore[arg-type]
            crs=crs,
            labels=labels,
            tile_size=tile_size,
            workers=workers,
        )
    except (ConfigError, ValidationError, typer.BadParameter) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err

    from slumwatch.catalogs.errors import CatalogError
    from slumwatch.pipelines.ingest import run_ingest

    try:
        result = run_ingest(params)
    except CatalogError as err:
        console.print(f"[red]ingest failed:[/red] {type(err).__name__}: {err}")
        raise typer.Exit(1) from err
    table = Table(title=f"Cube {result.cube}")
    for col in ("year", "scenes", "valid %"):
        table.add_column(col, justify="right")
    for row in result.years:
        table.add_row(str(row.year), str(row.scenes), f"{row.valid_fraction * 100:.1f}")
    console.print(table)
    if result.missing_years:
        console.print(f"years without imagery: {', '.join(map(str, result.missing_years))}")
