"""Segmentation on a cube: supervised training as a Ray task, tiled inference on Ray Data.

These are the actor-level entry points the flows call: they read cubes through
``catalogs``, build torch datasets and run the ``models`` engine where Ray puts them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from slumwatch.actors.cube_datasets import CubeTileDatasets
from slumwatch.actors.inference import predict_cube
from slumwatch.actors.tiles import BandScaling, CubeArrays
from slumwatch.catalogs.tiling import TileSpec, iter_tiles

__all__ = ["cube_band_scaling", "held_out_mask", "predict_from_checkpoint", "train_from_cube"]

DEMO_SCALE_RANGE = (0.8, 1.25)
"""Random-resize range of the weak augmentation: narrow, since building size is a cue at fixed GSD."""
SCALING_PERCENTILES = (1.0, 99.0)
NUM_CLASSES = 2
"""non-slum, slum"""


def cube_band_scaling(cube: Path) -> BandScaling:
    """Per-band percentile stretch of a cube (valid pixels only)."""
    from slumwatch.catalogs.cube import band_statistics, open_cube

    ds = open_cube(cube)
    stats = band_statistics(ds, low=SCALING_PERCENTILES[0], high=SCALING_PERCENTILES[1])
    bands = tuple(str(b) for b in ds["band"].values)
    low = tuple(float(stats[b][0]) for b in bands)
    high = tuple(max(float(stats[b][1]), float(stats[b][0]) + 1.0) for b in bands)
    return BandScaling(bands=bands, low=low, high=high)


def _cube_years(cube: Path) -> tuple[int, ...]:
    import xarray as xr

    with xr.open_zarr(str(cube)) as ds:
        return tuple(int(t) for t in ds["time"].dt.year.values)


def _train_worker(
    datasets: CubeTileDatasets,
    *,
    model_name: str,
    in_channels: int,
    run_dir: str,
    config: Any,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """Runs inside a Ray worker: the engine's single-process path on the cube's tiles."""
    from slumwatch.actors.training import train_local

    result = train_local(
        config=config,
        model_name=model_name,
        model_kwargs={"num_classes": NUM_CLASSES, "in_channels": in_channels},
        method_name="supervised",
        method_kwargs={},
        dataset_builder=datasets,
        run_dir=Path(run_dir),
        normalization=datasets.scaling.to_dict(),
        metadata=metadata,
    )
    return result.to_dict()


def train_from_cube(
    *,
    cube: Path,
    run_dir: Path,
    model_name: str,
    train_years: tuple[int, ...],
    epochs: int,
    batch_size: int,
    crop_size: int,
    val_every: int = 1,
    learning_rate: float,
    train_fraction: float,
    tile_size: int,
    seed: int,
    device: str = "auto",
) -> tuple[Path, dict[str, Any]]:
    """Supervised training on labelled tiles of ``train_years`` as one Ray task.

    Tile positions are split spatially: ``train_fraction`` of them train, the rest
    validate (the same positions in every year), so validation is on unseen ground.

    Returns:
        (path of the best checkpoint, its metadata incl. the held-out tile ids).
    """
    import ray

    from slumwatch.actors.cluster import ray_cluster
    from slumwatch.models.engine import TrainConfig

    arrays = CubeArrays.open(cube)
    _, n_bands, height, width = arrays.shape
    spec = TileSpec(tile_size)
    tile_ids = [w.tile_id for w in iter_tiles(spec, height=height, width=width)]
    train_tiles, val_tiles = CubeTileDatasets.split_tiles(tile_ids, fraction=train_fraction, seed=seed)
    cube_years = _cube_years(cube)
    datasets = CubeTileDatasets(
        cube=Path(cube),
        cube_years=cube_years,
        train_years=tuple(train_years),
        val_years=tuple(train_years),
        train_tiles=train_tiles,
        val_tiles=val_tiles,
        spec=spec,
        scaling=cube_band_scaling(cube),
        crop_size=crop_size,
        seed=seed,
        scale_range=DEMO_SCALE_RANGE,
    )
    metadata = {
        "method": "supervised",
        "model_name": model_name,
        "train_years": list(train_years),
        "epochs": epochs,
        "train_tiles": list(train_tiles),
        "held_out_tiles": list(val_tiles),
        "tile_size": tile_size,
        "cube": str(cube),
    }
    use_gpu = device != "cpu" and _cuda_available()
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=learning_rate,
        seed=seed,
        device="cuda" if use_gpu else "cpu",
        val_every=val_every,
    )
    with ray_cluster():
        decorator: Any = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0)
        remote = decorator(_train_worker)
        result = ray.get(
            remote.remote(
                datasets,
                model_name=model_name,
                in_channels=n_bands,
                run_dir=str(run_dir),
                config=config,
                metadata=metadata,
            )
        )
    best = Path(result["best_path"] or result["latest_path"])
    meta = {**metadata, "best_miou": result["best_miou"], "history": result["history"]}
    (Path(run_dir) / "training.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return best, meta


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def predict_from_checkpoint(
    *,
    cube: Path,
    checkpoint: Path,
    out: Path,
    tile_size: int,
    overlap: int,
    batch_size: int,
    num_actors: int = 1,
    device: str = "auto",
) -> Path:
    """Tiled inference of every year of ``cube`` with the checkpoint's own band scaling."""
    from slumwatch.actors.cluster import ray_cluster
    from slumwatch.models.checkpoint import read_checkpoint

    raw = read_checkpoint(checkpoint)
    scaling = BandScaling.from_dict(dict(raw["normalization"]))
    use_gpu = device != "cpu" and _cuda_available()
    with ray_cluster():
        return predict_cube(
            cube=cube,
            checkpoint=checkpoint,
            out=out,
            spec=TileSpec(tile_size, overlap),
            scaling=scaling,
            batch_size=batch_size,
            num_actors=num_actors,
            device="cuda" if use_gpu else "cpu",
            use_gpu=use_gpu,
        )


def held_out_mask(*, cube: Path, checkpoint_meta: dict[str, Any]) -> np.ndarray | None:
    """(H, W) bool: True on tiles held out from training (None when unknown)."""
    held = checkpoint_meta.get("held_out_tiles")
    size = checkpoint_meta.get("tile_size")
    if not held or not size:
        return None
    _, _, height, width = CubeArrays.open(cube).shape
    mask = np.zeros((height, width), dtype=bool)
    wanted = set(held)
    for window in iter_tiles(TileSpec(int(size)), height=height, width=width):
        if window.tile_id in wanted:
            mask[window.core_slices] = True
    return mask
