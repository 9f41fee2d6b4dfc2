"""The end-to-end demo flow on the embedded default (local Prefect, local Ray, local files).

synthetic city → STAC search → Zarr cube (+ labels) → short supervised training →
tiled inference on a local Ray cluster → per-year slum area and growth vs. ground truth →
static HTML report.

The flow only orchestrates: each task calls one library function of ``catalogs``,
``actors``, ``slumwatch.change`` or ``dashboards``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task

from slumwatch.config import DemoConfig

__all__ = ["DemoResult", "demo_flow", "run_demo"]

TASK_RETRIES = 2
DEFAULT_THRESHOLD = 0.5
TASK_RETRY_DELAY_S = 2
T = TypeVar("T")


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its outputs, and its headline numbers."""

    run_dir: Path
    city_dir: Path
    cube: Path
    checkpoint: Path
    predictions: Path
    growth_csv: Path
    metrics_json: Path
    report: Path
    metrics: dict[str, Any]


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def synthesize_city(*, size: str, seed: int, years: tuple[int, ...], resolution: float, out: Path) -> Path:
    """Generate (or reuse) the ground-truthed synthetic city."""
    from slumwatch.catalogs.synth import SynthSpec, generate_city

    spec = SynthSpec.from_size(size, seed=seed, years=years, resolution=resolution)
    generate_city(spec, out=out)
    return out


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def search_catalog(*, catalog: Path, years: tuple[int, ...]) -> list[Any]:
    """All items of the catalog in the year range."""
    from slumwatch.catalogs.search import search_items

    items = search_items(catalog=catalog, datetime=f"{years[0]}-01-01/{years[-1]}-12-31")
    get_run_logger().info("found %d STAC items for %d-%d", len(items), years[0], years[-1])
    return items


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def load_cube(*, items: list[Any], out: Path, resolution: float, tile_size: int, labels: Path) -> Path:
    """Load the items into a (time, band, y, x) Zarr cube and rasterize the labels into it."""
    from slumwatch.catalogs.cube import GridSpec, build_cube
    from slumwatch.catalogs.labels import rasterize_labels
    from slumwatch.catalogs.tiling import TileSpec

    ref = build_cube(items=items, out=out, grid=GridSpec(resolution=resolution), tile=TileSpec(tile_size))
    rasterize_labels(cube=ref, source=labels)
    return ref.path


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def train_model(*, cube: Path, cfg: DemoConfig, run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Short supervised training of a small DeepLabV3+ on labelled tiles of a few years."""
    from slumwatch.actors.segmentation import train_from_cube

    return train_from_cube(
        cube=cube,
        run_dir=run_dir,
        model_name=cfg.model,
        train_years=cfg.training_years,
        epochs=cfg.epochs,
        val_every=cfg.val_every,
        batch_size=cfg.batch_size,
        crop_size=cfg.crop_size,
        learning_rate=cfg.learning_rate,
        train_fraction=cfg.train_fraction,
        tile_size=cfg.tile_size,
        seed=cfg.seed,
        device=cfg.device,
    )


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def predict(*, cube: Path, checkpoint: Path, out: Path, cfg: DemoConfig) -> Path:
    """Tiled inference over every year on the Ray cluster."""
    from slumwatch.actors.segmentation import predict_from_checkpoint

    return predict_from_checkpoint(
        cube=cube,
        checkpoint=checkpoint,
        out=out,
        tile_size=cfg.tile_size,
        overlap=cfg.tile_overlap,
        batch_size=cfg.batch_size,
        num_actors=cfg.ray_workers,
        device=cfg.device,
    )


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def summarize(
    *, predictions: Path, cube: Path, city_dir: Path, checkpoint_meta: dict[str, Any], run_dir: Path
) -> dict[str, Any]:
    """Per-year area and growth vs. ground truth → growth.csv, metrics.json."""
    from slumwatch.actors.segmentation import held_out_mask
    from slumwatch.change import summarize_growth, write_growth_csv

    truth = json.loads((city_dir / "truth.json").read_text(encoding="utf-8"))
    years = [int(y) for y in truth["years"]]
    resolution = float(truth["resolution"])
    report = summarize_growth(
        predictions=predictions,
        years=years,
        pixel_area_m2=resolution * resolution,
        labels=cube,
        truth_area_m2={int(k): float(v) for k, v in truth["slum_area_m2"].items()},
        eval_mask=held_out_mask(cube=cube, checkpoint_meta=checkpoint_meta),
        threshold=float(checkpoint_meta.get("threshold", DEFAULT_THRESHOLD)),
    )
    write_growth_csv(report, run_dir / "growth.csv")
    return {
        "city": truth.get("name", city_dir.name),
        "crs": truth["crs"],
        "resolution_m": resolution,
        "years": years,
        "cube": str(cube),
        "overall": dict(report.pixel_metrics),
        "overall_scope": "held_out_tiles",
        "growth": dict(report.growth_metrics),
        "model": {
            "name": checkpoint_meta.get("model_name"),
            **{
                k: checkpoint_meta.get(k)
                for k in ("method", "best_miou", "threshold", "threshold_f1", "train_years", "epochs")
            },
        },
        "per_year": [{"year": r.year, "iou": r.iou, "area_error_pct": r.area_error_pct} for r in report.rows],
    }


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def render(*, run_dir: Path, metrics: dict[str, Any]) -> Path:
    """Write metrics.json and the static HTML report."""
    from slumwatch.dashboards import render_report

    tmp = run_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    tmp.replace(run_dir / "metrics.json")
    return render_report(run_dir=run_dir)


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 2)


def _step(timings: dict[str, float], name: str, fn: Callable[..., T], **kwargs: Any) -> T:
    with _timed(timings, name):
        return fn(**kwargs)


@flow(name="demo", log_prints=True)
def demo_flow(cfg: DemoConfig) -> DemoResult:
    """Run the whole demo; every output lands under ``cfg.out``."""
    run_dir = cfg.out
    run_dir.mkdir(parents=True, exist_ok=True)
    years = cfg.years.years
    timings: dict[str, float] = {}
    city = _step(
        timings,
        "synth",
        synthesize_city,
        size=cfg.size,
        seed=cfg.seed,
        years=years,
        resolution=cfg.resolution,
        out=run_dir / "city",
    )
    items = _step(timings, "search", search_catalog, catalog=city / "catalog.json", years=years)
    cube = _step(
        timings,
        "cube",
        load_cube,
        items=items,
        out=run_dir / "cube.zarr",
        resolution=cfg.resolution,
        tile_size=cfg.tile_size,
        labels=city / "labels" / "slums.parquet",
    )
    checkpoint, meta = _step(timings, "train", train_model, cube=cube, cfg=cfg, run_dir=run_dir / "model")
    predictions = _step(
        timings,
        "predict",
        predict,
        cube=cube,
        checkpoint=checkpoint,
        out=run_dir / "predictions.zarr",
        cfg=cfg,
    )
    metrics = _step(
        timings,
        "summarize",
        summarize,
        predictions=predictions,
        cube=cube,
        city_dir=city,
        checkpoint_meta=meta,
        run_dir=run_dir,
    )
    metrics["timings_s"] = timings
    report = render(run_dir=run_dir, metrics=metrics)
    return DemoResult(
        run_dir=run_dir,
        city_dir=city,
        cube=cube,
        checkpoint=checkpoint,
        predictions=predictions,
        growth_csv=run_dir / "growth.csv",
        metrics_json=run_dir / "metrics.json",
        report=report,
        metrics=metrics,
    )


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Run :func:`demo_flow` (local ephemeral Prefect API; no server to start by hand)."""
    return demo_flow(cfg)


def growth_rows(path: Path) -> Sequence[dict[str, str]]:
    """Rows of a growth.csv, for printing."""
    import csv

    with Path(path).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
