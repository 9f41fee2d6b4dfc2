"""A tiny ground-truthed cube with splits for the training tests (built once per test process).

Generated from a 256 x 256 synthetic city (seed 1 has slums in both years), built into a Zarr cube
with 64-pixel tiles, labels rasterized and nested 10 % / 30 % label budgets; everything under the
session's pytest temporary folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

CITY_SIZE = "256x256"
CITY_SEED = 1
YEARS = (2019, 2020)
TILE = 64
FRACTIONS = (0.1, 0.3)
BUDGET = 0.3
MODEL = "deeplabv3plus_resnet18"
CROP = 64

_CACHE: dict[str, object] = {}


@dataclass(frozen=True)
class TinyCube:
    """Paths of the tiny training cube."""

    city: Path
    cube: Path
    splits: Path


def tiny_training_cube(tmp_path_factory: pytest.TempPathFactory) -> TinyCube:
    """Generate (once per process) the city, its cube (with labels) and its splits."""
    cached = _CACHE.get("cube")
    if isinstance(cached, TinyCube):
        return cached
    from slumwatch.catalogs.cube import GridSpec, build_cube
    from slumwatch.catalogs.labels import rasterize_labels
    from slumwatch.catalogs.search import search_items
    from slumwatch.catalogs.splits import SplitSpec, make_splits
    from slumwatch.catalogs.synth import SynthSpec, generate_city
    from slumwatch.catalogs.tiling import TileSpec

    root = tmp_path_factory.mktemp("training-cube")
    city = root / "city"
    generate_city(SynthSpec.from_size(CITY_SIZE, seed=CITY_SEED, years=YEARS), out=city)
    ref = build_cube(
        items=search_items(catalog=city / "catalog.json", datetime=f"{YEARS[0]}-01-01/{YEARS[-1]}-12-31"),
        out=root / "cube.zarr",
        grid=GridSpec(resolution=0.6),
        tile=TileSpec(TILE),
        progress=False,
    )
    rasterize_labels(cube=ref, source=city / "labels" / "slums.parquet")
    splits = make_splits(cube=ref, spec=SplitSpec(seed=0, fractions=FRACTIONS)).save(root / "splits.json")
    tiny = TinyCube(city=city, cube=ref.path, splits=splits)
    _CACHE["cube"] = tiny
    return tiny


def tiny_supervised_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A supervised checkpoint trained for one iteration on :func:`tiny_training_cube` (once per process)."""
    cached = _CACHE.get("checkpoint")
    if isinstance(cached, Path):
        return cached
    from slumwatch.actors.method_training import DataOptions, train_method_from_cube
    from slumwatch.models.engine import TrainConfig

    tiny = tiny_training_cube(tmp_path_factory)
    result = train_method_from_cube(
        cube=tiny.cube,
        splits=tiny.splits,
        method="supervised",
        budget=BUDGET,
        model_name=MODEL,
        train_config=TrainConfig(max_iters=1, batch_size=2, device="cpu", amp=False),
        run_dir=tmp_path_factory.mktemp("supervised-run"),
        distributed=False,
        data=DataOptions(crop_size=CROP),
    )
    _CACHE["checkpoint"] = result.checkpoint
    return result.checkpoint
