"""``slumwatch evaluate``: per-class IoU and mIoU of a checkpoint on a cube's split (or every tile)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from slumwatch.config import ConfigError, parse_years

USAGE_ERROR = 2
EVAL_FAILED = 1


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""
    app.command("evaluate")(evaluate)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def scores_table(metrics: Mapping[str, Any], *, title: str) -> Any:
    """A rich table: IoU and F1 per class, then mIoU / mean F1 / pixel accuracy."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("class", "IoU", "F1"):
        table.add_column(col, justify="right" if col != "class" else "left")
    ious = dict(metrics.get("iou_per_class") or {})
    f1s = dict(metrics.get("f1_per_class") or {})
    for name, iou in ious.items():
        table.add_row(name, _fmt(iou), _fmt(f1s.get(name)))
    table.add_row(
        "[bold]mean[/bold]", f"[bold]{_fmt(metrics.get('miou'))}[/bold]", _fmt(metrics.get("mean_f1"))
    )
    table.add_row("pixel accuracy", _fmt(metrics.get("pixel_accuracy")), "")
    return table


def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint (best.pt / latest.pt)."),
    cube: Path = typer.Option(..., "--cube", help="Cube with labels to score on."),
    splits: Path | None = typer.Option(
        None, "--splits", help="Splits JSON of the cube; without it every tile is scored (zero-shot)."
    ),
    split: str = typer.Option("test", "--split", help="train, val, test or a subset such as train_10."),
    years: str | None = typer.Option(None, "--years", help="Year range, e.g. 2019-2021 (default: all)."),
    window: int | None = typer.Option(None, "--window", help="Sliding-window size (default: whole tiles)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the metrics as JSON here."),
) -> None:
    """Score a checkpoint on a cube: per-class IoU, F1, mIoU and pixel accuracy (overall and per year)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    try:
        year_list = parse_years(years).years if years else None
    except ConfigError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(USAGE_ERROR) from err
    if device not in ("auto", "cpu", "cuda"):
        console.print(f"[red]error:[/red] --device must be auto, cpu or cuda, not {device!r}")
        raise typer.Exit(USAGE_ERROR)

    from slumwatch.actors.evaluation import EvaluationError, evaluate_checkpoint
    from slumwatch.actors.tiles import TileReadError
    from slumwatch.catalogs.errors import CatalogError
    from slumwatch.models.errors import ModelsError

    try:
        metrics = evaluate_checkpoint(
            checkpoint=checkpoint,
            cube=cube,
            splits=splits,
            split=split,
            years=year_list,
            sliding_window=window,
            device=device,
        )
    except (EvaluationError, TileReadError, CatalogError, ModelsError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EVAL_FAILED) from err
    scope = f"split {metrics['split']}" if splits is not None else "all tiles"
    console.print(scores_table(metrics, title=f"{metrics['city']} — {scope}, years {metrics['years']}"))
    per_year = metrics.get("per_year") or {}
    if len(per_year) > 1:
        table = Table(title="per year")
        for col in ("year", *metrics["iou_per_class"], "mIoU"):
            table.add_column(f"IoU {col}" if col not in ("year", "mIoU") else col, justify="right")
        for year, scores in per_year.items():
            ious = [_fmt(v) for v in scores["iou_per_class"].values()]
            table.add_row(year, *ious, _fmt(scores["miou"]))
        console.print(table)
    console.print(f"mIoU {_fmt(metrics['miou'])} over {metrics['samples']} tile-years")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        console.print(f"metrics written to {json_out}")
