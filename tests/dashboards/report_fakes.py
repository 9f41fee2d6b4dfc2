"""Generate fake run folders for the report tests (nothing is committed; all data is made on the fly).

A run holds ``growth.csv``, ``metrics.json``, a small ``predictions.zarr`` (11 × 64 × 80 by default,
written with xarray ``to_zarr``) and a small imagery cube (uint8 or uint16) that metrics.json names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

YEARS = tuple(range(2014, 2025))
HEIGHT, WIDTH = 64, 80
RESOLUTION_M = 4.0
PROB_SCALE = 250
NODATA = 255
CLOUD_YEAR = 2020
NO_TRUTH_YEAR = 2016
BANDS = ("red", "green", "blue", "nir")
CITY = "Testville"


@dataclass(frozen=True)
class FakeRun:
    """Paths and the expected table of a generated run."""

    run_dir: Path
    growth: pd.DataFrame
    metrics: dict[str, Any]
    cube: Path | None


def _slum_probability(year: int, *, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Slum blobs that grow year by year (and one that is cleared), as probability × 250 (uint8)."""
    rows, cols = np.indices((height, width))
    k = year - YEARS[0]
    centres = [  # (row, col, radius growing with k) scaled to the grid
        (0.35 * height, 0.3 * width, 0.10 * height + 0.012 * height * k),
        (0.7 * height, 0.65 * width, 0.06 * height + 0.01 * height * k),
    ]
    slum = np.zeros((height, width), dtype=bool)
    for r, c, radius in centres:
        slum |= (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
    if k < 6:  # a settlement that is cleared in 2020
        slum |= (np.abs(rows - 0.2 * height) < 0.06 * height) & (np.abs(cols - 0.8 * width) < 0.06 * width)
    prob = np.where(slum, rng.uniform(0.6, 1.0, slum.shape), rng.uniform(0.0, 0.4, slum.shape))
    return np.round(prob * PROB_SCALE).astype(np.uint8)


def _imagery(prob: np.ndarray, *, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """A textured RGB+NIR image, darker and browner on slums; 0 = nodata in one corner."""
    slum = prob >= PROB_SCALE // 2
    height, width = prob.shape
    rows, cols = np.indices((height, width))
    base = 0.45 + 0.15 * np.sin(rows / 5.0) * np.cos(cols / 7.0) + rng.normal(0, 0.05, (height, width))
    tints = {"red": (1.0, 0.85), "green": (1.05, 0.65), "blue": (0.95, 0.55), "nir": (1.3, 0.7)}
    scale = 250.0 if dtype == "uint8" else 4000.0
    bands = []
    for band in BANDS:
        veg, built = tints[band]
        value = np.clip(base * np.where(slum, built, veg), 0.02, 1.0) * scale
        bands.append(value)
    image = np.stack(bands).astype(dtype)
    image[:, :4, :6] = 0  # nodata corner
    return image


def _coords(height: int, width: int) -> dict[str, np.ndarray]:
    # pixel centres, y decreasing (north-up) as rioxarray writes them
    return {
        "y": 1_000_000.0 - (np.arange(height) + 0.5) * RESOLUTION_M,
        "x": 500_000.0 + (np.arange(width) + 0.5) * RESOLUTION_M,
    }


def write_predictions(
    path: Path, prob: np.ndarray, *, years: tuple[int, ...], chunks: tuple[int, int, int] = (1, 32, 32)
) -> None:
    """Write ``slum_prob`` (time, y, x) uint8 plus coords to a Zarr v3 store with xarray."""
    times = pd.to_datetime([f"{y}-06-15" for y in years])
    dataset = xr.Dataset(
        {"slum_prob": (("time", "y", "x"), prob)},
        coords={"time": times, **_coords(prob.shape[1], prob.shape[2])},
    )
    dataset.to_zarr(
        path, mode="w", zarr_format=3, consolidated=False, encoding={"slum_prob": {"chunks": chunks}}
    )


def write_cube(path: Path, imagery: np.ndarray, *, years: tuple[int, ...], tile: int = 32) -> None:
    """Write ``imagery`` (time, band, y, x) with a ``band`` coord to a Zarr v3 store."""
    times = pd.to_datetime([f"{y}-06-15" for y in years])
    dataset = xr.Dataset(
        {"imagery": (("time", "band", "y", "x"), imagery)},
        coords={
            "time": times,
            "band": np.array(BANDS, dtype=object),
            **_coords(imagery.shape[2], imagery.shape[3]),
        },
    )
    chunks = (1, imagery.shape[1], tile, tile)
    dataset.to_zarr(
        path, mode="w", zarr_format=3, consolidated=False, encoding={"imagery": {"chunks": chunks}}
    )


def make_run(
    root: Path,
    *,
    imagery_dtype: str | None = "uint8",
    with_metrics: bool = True,
    with_predictions: bool = True,
    cube_reference: str | None = None,
    seed: int = 7,
) -> FakeRun:
    """Create a fake run folder under ``root``; ``imagery_dtype=None`` makes no cube."""
    rng = np.random.default_rng(seed)
    run_dir = root / "run"
    run_dir.mkdir(parents=True)
    prob = np.stack([_slum_probability(y, height=HEIGHT, width=WIDTH, rng=rng) for y in YEARS])
    cloud = np.zeros((HEIGHT, WIDTH), dtype=bool)
    cloud[10:50, 20:70] = True  # 2020 is largely cloudy
    prob[YEARS.index(CLOUD_YEAR)][cloud] = NODATA

    pixel_m2 = RESOLUTION_M**2
    records = []
    for i, year in enumerate(YEARS):
        usable = prob[i] != NODATA
        predicted = float(((prob[i] >= PROB_SCALE // 2) & usable).sum() * pixel_m2)
        true = None if year == NO_TRUTH_YEAR else round(predicted * (1 + 0.03 * np.sin(i)), 1)
        records.append(
            {
                "year": year,
                "predicted_area_m2": predicted,
                "true_area_m2": true,
                "valid_fraction": round(float(usable.mean()), 4),
                "iou": None if true is None else round(0.7 + 0.01 * i, 3),
            }
        )
    growth = pd.DataFrame.from_records(records)
    growth["predicted_growth_m2"] = growth["predicted_area_m2"].diff()
    growth["true_growth_m2"] = growth["true_area_m2"].diff()
    growth["area_error_pct"] = (
        (growth["predicted_area_m2"] - growth["true_area_m2"]) / growth["true_area_m2"] * 100
    ).round(2)
    growth = growth[
        [
            "year",
            "predicted_area_m2",
            "true_area_m2",
            "valid_fraction",
            "predicted_growth_m2",
            "true_growth_m2",
            "area_error_pct",
            "iou",
        ]
    ]
    growth.to_csv(run_dir / "growth.csv", index=False)

    if with_predictions:
        write_predictions(run_dir / "predictions.zarr", prob, years=YEARS)

    cube: Path | None = None
    if imagery_dtype is not None:
        cube = root / "cube.zarr"
        imagery = np.stack([_imagery(prob[i], dtype=imagery_dtype, rng=rng) for i in range(len(YEARS))])
        write_cube(cube, imagery, years=YEARS)

    first, last = growth.iloc[0], growth.iloc[-1]
    metrics: dict[str, Any] = {
        "city": CITY,
        "crs": "EPSG:32637",
        "resolution_m": RESOLUTION_M,
        "years": list(YEARS),
        "overall": {"miou": 0.8123, "iou_per_class": [0.9512, 0.6734], "f1": 0.8051, "accuracy": 0.9633},
        "growth": {
            "mae_m2": 412.5,
            "mape_pct": 3.1,
            "total_growth_pred_m2": float(last.predicted_area_m2 - first.predicted_area_m2),
            "total_growth_true_m2": float(last.true_area_m2 - first.true_area_m2),
            "growth_error_pct": 6.27,
        },
        "model": {"name": "unet", "encoder": "resnet34", "params": 24436369, "checkpoint": "ckpt/best.pt"},
        "timings_s": {"inference": 12.3, "metrics": 0.8, "total": 251.0},
    }
    if cube is not None:
        metrics["cube"] = cube_reference if cube_reference is not None else str(cube)
    if with_metrics:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return FakeRun(run_dir=run_dir, growth=growth, metrics=metrics, cube=cube)
