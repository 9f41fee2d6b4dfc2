"""``slumwatch train``: train one segmentation method on cube(s), evaluate it and register the model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from slumwatch.config import ConfigError, load_yaml_config
from slumwatch.training_config import METHOD_NAMES, TrainRunConfig

EPHEMERAL_STARTUP_TIMEOUT_S = "180"
USAGE_ERROR = 2


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train)


def build_config(config: Path | None, overrides: dict[str, Any]) -> TrainRunConfig:
    """The validated run configuration: the YAML file (if any) with the CLI ``overrides`` on top.

    Raises:
        ConfigError: an unreadable file or invalid values (every offending field is named).
    """
    if config is not None:
        return load_yaml_config(config, TrainRunConfig, overrides=overrides)
    try:
        return TrainRunConfig.model_validate(overrides)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid training options: {problems}") from err


def train(
    method: str | None = typer.Option(None, "--method", help=f"One of: {', '.join(METHOD_NAMES)}."),
    budget: float | None = typer.Option(None, "--budget", help="Label budget, e.g. 0.03 or 0.1."),
    cube: list[Path] | None = typer.Option(None, "--cube", help="Training cube (repeat for several cities)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (checkpoints, splits, metrics)."),
    config: Path | None = typer.Option(None, "--config", help="YAML file with TrainRunConfig fields."),
    model: str | None = typer.Option(None, "--model", help="Registered network name."),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs (per stage for ST/ST++)."),
    max_iters: int | None = typer.Option(None, "--max-iters", help="Cap on training iterations."),
    workers: int | None = typer.Option(None, "--workers", help="Ray Train workers (DDP)."),
    splits: list[Path] | None = typer.Option(None, "--splits", help="Splits JSON per cube (made if absent)."),
    registry: Path | None = typer.Option(None, "--registry", help="Model registry folder."),
    gpu: bool | None = typer.Option(None, "--gpu/--no-gpu", help="One GPU per Ray worker."),
    local: bool = typer.Option(False, "--local", help="Train in this process instead of on Ray."),
) -> None:
    """Train a method (supervised, FixMatch, UniMatch, SLUM-i, ST/ST++, UniMatch V2) at a label budget,
    evaluate it on the test split and add it to the model registry."""
    from rich.console import Console

    console = Console()
    values: dict[str, Any] = {
        "method": method,
        "budget": budget,
        "cubes": cube or None,
        "out": out,
        "model": model,
        "epochs": epochs,
        "max_iters": max_iters,
        "num_workers": workers,
        "splits": splits or None,
        "registry": registry,
        "use_gpu": gpu,
    }
    overrides = {k: v for k, v in values.items() if v is not None}
    if local:
        overrides["distributed"] = False
    try:
        cfg = build_config(config, overrides)
    except ConfigError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(USAGE_ERROR) from err

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_S)
    from slumwatch.commands.evaluate import scores_table
    from slumwatch.pipelines.train import train_flow

    entry = train_flow(cfg)
    metrics = dict(entry.metrics)
    console.print(
        scores_table(metrics, title=f"{cfg.method} @ {cfg.budget:g} labels, {cfg.eval_split} split")
    )
    console.print(f"mIoU {_fmt(metrics.get('miou'))}")
    console.print("[bold]outputs[/bold]")
    for label, path in (
        ("checkpoint", entry.checkpoint),
        ("registry entry", entry.path),
        ("metrics", cfg.out / "metrics.json"),
    ):
        console.print(f"  {label:<16} {path}")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"
