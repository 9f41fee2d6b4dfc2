"""``slumwatch demo``: the end-to-end run on a generated synthetic city."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from slumwatch.config import ConfigError, DemoConfig, load_yaml_config, parse_years

EPHEMERAL_STARTUP_TIMEOUT_S = "180"


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""
    app.command("demo")(demo)


def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Output folder (created if missing)."),
    config: Path | None = typer.Option(None, "--config", help="YAML file with DemoConfig fields."),
    size: str | None = typer.Option(None, help="Synthetic city size: tiny, small, city, metro or WxH."),
    seed: int | None = typer.Option(None, help="Seed of the synthetic city."),
    years: str | None = typer.Option(None, help="Year range, e.g. 2014-2024."),
    epochs: int | None = typer.Option(None, help="Training epochs."),
    device: str | None = typer.Option(None, help="auto, cpu or cuda."),
) -> None:
    """Generate a synthetic city and run the whole pipeline on it: STAC search, Zarr cube,
    training, tiled inference on local Ray, growth vs. ground truth and an HTML report."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    overrides: dict[str, object] = {"out": out}
    for key, value in {"size": size, "seed": seed, "epochs": epochs, "device": device}.items():
        if value is not None:
            overrides[key] = value
    try:
        if years is not None:
            overrides["years"] = parse_years(years)
        cfg = (
            load_yaml_config(config, DemoConfig, overrides=overrides)
            if config is not None
            else DemoConfig.model_validate(overrides)
        )
    except (ConfigError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err

    # Local ephemeral Prefect API: allow a slow start on small machines (read when prefect is imported).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_S)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network: no telemetry
    from slumwatch.pipelines.demo import growth_rows, run_demo

    result = run_demo(cfg)
    table = Table(title="Slum area per year: measured vs. ground truth")
    for col in ("year", "measured (ha)", "true (ha)", "error %", "valid %", "IoU"):
        table.add_column(col, justify="right")
    for row in growth_rows(result.growth_csv):

        def ha(v: str) -> str:
            return f"{float(v) / 1e4:,.2f}" if v else "-"

        def pct(v: str, scale: float = 1.0) -> str:
            return f"{float(v) * scale:+.1f}" if v else "-"

        table.add_row(
            row["year"],
            ha(row["predicted_area_m2"]),
            ha(row["true_area_m2"]),
            pct(row["area_error_pct"]),
            f"{float(row['valid_fraction']) * 100:.0f}",
            f"{float(row['iou']):.3f}" if row["iou"] else "-",
        )
    console.print(table)
    overall = result.metrics.get("overall", {})
    growth = result.metrics.get("growth", {})
    if overall.get("miou") is not None:
        console.print(f"held-out mIoU {overall['miou']:.3f}  (IoU per class {overall.get('iou_per_class')})")
    if "growth_error_pct" in growth:
        console.print(
            f"growth {growth['total_growth_pred_m2'] / 1e4:,.2f} ha measured vs "
            f"{growth['total_growth_true_m2'] / 1e4:,.2f} ha true (error {growth['growth_error_pct']:.1f} %)"
        )
    console.print("[bold]outputs[/bold]")
    for label, path in (
        ("synthetic city (STAC)", result.city_dir / "catalog.json"),
        ("imagery cube", result.cube),
        ("model checkpoint", result.checkpoint),
        ("predictions", result.predictions),
        ("growth table", result.growth_csv),
        ("metrics", result.metrics_json),
        ("report", result.report),
    ):
        console.print(f"  {label:<22} {path}")
