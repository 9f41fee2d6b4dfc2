"""``slumwatch synth``: generate the ground-truthed multi-year synthetic city.

The generator (:mod:`slumwatch.catalogs.synth`: rasterio, shapely, pyarrow) is imported
inside the command, so ``slumwatch --help`` stays fast.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Final

import typer

SYNTH_ERROR_EXIT_CODE: Final = 2
DEFAULT_SIZE: Final = "tiny"
DEFAULT_SEED: Final = 7
DEFAULT_YEARS: Final = "2014-2024"
DEFAULT_RESOLUTION_M: Final = 0.6
DEFAULT_WINDOW_PX: Final = 1024

_HELP: Final = "\n\n".join(
    (
        "Generate a deterministic synthetic city with full ground truth, one scene per year.",
        "A seeded procedural city stands in for 0.5-0.6 m imagery: formal districts (road grid, "
        "regular buildings, trees, shadows) and informal settlements (dense small R/U/T/I/L roofs, "
        "narrow alleys) that grow - faster in 2020-2021 - and are sometimes cleared. Each year has its "
        "own sun angle, sensor gain, haze, clouds (with a cloud mask) and nodata swath edges.",
        "Writes under OUT: imagery/<year>.tif and imagery/<year>_cloud.tif (COGs), labels/masks/<year>.tif "
        "(1 slum, 0 non-slum, 255 nodata), labels/slums.parquet and labels/buildings.parquet (GeoParquet), "
        "truth.json (true slum area per year, building counts) and a static STAC catalog OUT/catalog.json. "
        "The same options always give the same bytes.",
        "Example: slumwatch synth --size tiny --seed 7 --out out/tiny",
    )
)


class Bands(str, Enum):
    """Band layouts."""

    rgb = "rgb"
    rgbn = "rgbn"


class Dtype(str, Enum):
    """Pixel types."""

    uint8 = "uint8"
    uint16 = "uint16"


def register(app: typer.Typer) -> None:
    """Add the ``synth`` command to ``app``."""

    @app.command("synth", help=_HELP)
    def synth(
        out: Path = typer.Option(
            ..., "--out", "-o", help="Output folder (created; existing outputs are replaced)."
        ),
        size: str = typer.Option(
            DEFAULT_SIZE,
            "--size",
            help="Preset: tiny (1024x1024), small (4096x4096), city (20000x20000), metro (40000x40000); "
            "or WIDTHxHEIGHT in pixels, e.g. 1000x777.",
        ),
        seed: int = typer.Option(
            DEFAULT_SEED, "--seed", min=0, help="Seed of the city and of every per-year effect."
        ),
        bands: Bands = typer.Option(Bands.rgb, "--bands", help="rgb, or rgbn to add a near-infrared band."),
        dtype: Dtype = typer.Option(
            Dtype.uint8, "--dtype", help="uint8, or uint16 (12-bit-like values scaled by 16, with noise)."
        ),
        years: str = typer.Option(
            DEFAULT_YEARS,
            "--years",
            help="Years to render: a range (2014-2024), a list (2014,2019,2024) or both.",
        ),
        resolution: float = typer.Option(
            DEFAULT_RESOLUTION_M,
            "--resolution",
            help="Pixel size in metres (0.3-2.0; the look is tuned for 0.5-0.6).",
        ),
        window: int = typer.Option(
            DEFAULT_WINDOW_PX,
            "--window",
            help="Edge of the windows rendered one at a time, pixels (memory vs. speed).",
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        from rich.console import Console
        from rich.table import Table

        from slumwatch.catalogs.synth import SynthError, SynthSpec, generate_city, parse_years

        console = Console()
        try:
            spec = SynthSpec.from_size(
                size,
                seed=seed,
                years=parse_years(years),
                bands=bands.value,
                dtype=dtype.value,
                resolution=resolution,
                window_size=window,
            )
        except SynthError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(code=SYNTH_ERROR_EXIT_CODE) from exc

        console.print(
            f"generating [bold]{spec.collection_id}[/]: {spec.width}x{spec.height} px at "
            f"{spec.resolution:g} m, {spec.bands} {spec.dtype}, years {spec.years[0]}-{spec.years[-1]} "
            f"({len(spec.years)} scenes), {spec.crs}"
        )
        started = time.perf_counter()
        try:
            city = generate_city(spec, out=out, progress=not quiet)
        except SynthError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(code=SYNTH_ERROR_EXIT_CODE) from exc
        elapsed = time.perf_counter() - started

        first, last = str(spec.years[0]), str(spec.years[-1])
        area = city.truth["slum_area_m2"]
        table = Table(
            title=f"synthetic city written in {elapsed:.1f} s", show_header=True, header_style="bold"
        )
        table.add_column("output")
        table.add_column("path", overflow="fold")
        rows = (
            ("STAC catalog", city.catalog),
            ("imagery (COG per year)", city.root / "imagery"),
            ("slum masks (COG per year)", city.root / "labels" / "masks"),
            ("slum outlines (GeoParquet)", city.slums),
            ("building footprints (GeoParquet)", city.buildings),
            ("ground truth summary", city.truth_path),
        )
        for label, path in rows:
            table.add_row(label, str(path))
        console.print(table)
        console.print(
            f"true slum area: {area[first] / 1e4:.2f} ha in {first} -> {area[last] / 1e4:.2f} ha in {last}; "
            f"{city.truth['n_buildings']} building footprints"
        )
