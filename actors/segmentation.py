"""Segmentation on a cube: supervised training as a Ray task, tiled inference on Ray Data.

These are the actor-level entry points the flows call: they read cubes through
``catalogs``, build torch datasets and run the ``models`` engine where Ray puts them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slumwatch.actors.cube_datasets import CubeTileDatasets
from slumwatch.actors.cube_tiles import cube_info
from slumwatch.actors.inference import InferenceError, predict_cube
from slumwatch.actors.tiles import BandScaling, CubeArrays, Scaling
from slumwatch.catalogs.tiling import TileSpec, iter_tiles

__all__ = [
    "cube_band_scaling",
    "cube_year_scalings",
    "held_out_mask",
    "normalization_record",
    "predict_from_checkpoint",
    "scaling_for_checkpoint",
    "train_from_cube",
]

DEMO_SCALE_RANGE = (0.8, 1.25)
"""Random-resize range of the weak augmentation: narrow, since building size is a cue at fixed GSD."""
SCALING_PERCENTILES = (1.0, 99.0)
NORMALIZATION_PER_YEAR = "per_year_percentiles"
NORMALIZATION_WHOLE = "cube_percentiles"
NUM_CLASSES = 2
"""non-slum, slum"""
SLUM_CLASS = 1
DEFAULT_THRESHOLD = 0.5


def _stretch(ds: Any) -> BandScaling:
    from slumwatch.catalogs.cube import band_statistics

    stats = band_statistics(ds, low=SCALING_PERCENTILES[0], high=SCALING_PERCENTILES[1])
    bands = tuple(str(b) for b in ds["band"].values)
    low = tuple(float(stats[b][0]) for b in bands)
    high = tuple(max(float(stats[b][1]), float(stats[b][0]) + 1.0) for b in bands)
    return BandScaling(bands=bands, low=low, high=high)


def cube_band_scaling(cube: Path) -> BandScaling:
    """Per-band percentile stretch of a whole cube (valid pixels of every year)."""
    from slumwatch.catalogs.cube import open_cube

    return _stretch(open_cube(cube))


def cube_year_scalings(cube: Path, *, fallback: BandScaling | None = None) -> dict[int, BandScaling]:
    """One percentile stretch per time index (per-scene normalisation).

    Each year's scene is stretched on its own valid pixels, which removes most of the
    per-acquisition gain, offset and haze differences between years and sensors. A year
    without valid pixels falls back to ``fallback`` (default: the whole-cube stretch,
    computed only when needed).
    """
    from slumwatch.catalogs.cube import open_cube
    from slumwatch.catalogs.errors import CubeError

    ds = open_cube(cube)
    out: dict[int, BandScaling] = {}
    for t in range(int(ds.sizes["time"])):
        try:
            out[t] = _stretch(ds.isel(time=[t]))
        except CubeError:
            if fallback is None:
                fallback = _stretch(ds)
            out[t] = fallback
    return out


def normalization_record(scaling: Scaling, *, reference: BandScaling) -> dict[str, Any]:
    """What a checkpoint stores about its input scaling (``mode`` tells inference what to recompute)."""
    mode = NORMALIZATION_WHOLE if isinstance(scaling, BandScaling) else NORMALIZATION_PER_YEAR
    return {**reference.to_dict(), "mode": mode, "percentiles": list(SCALING_PERCENTILES)}


def scaling_for_checkpoint(normalization: Mapping[str, Any], *, cube: Path) -> Scaling:
    """The stretch to apply to ``cube`` for a checkpoint trained with ``normalization``."""
    if normalization.get("mode") == NORMALIZATION_PER_YEAR:
        return cube_year_scalings(cube)
    if "low" not in normalization or "high" not in normalization:
        raise InferenceError(f"the checkpoint stores no input scaling (low/high): {dict(normalization)}")
    record = dict(normalization)
    if "bands" not in record:  # older / self-training checkpoints: bands are the cube's, in order
        from slumwatch.catalogs.cube import open_cube

        record["bands"] = [str(b) for b in open_cube(cube)["band"].values]
    return BandScaling.from_dict(record)


def _train_worker(
    datasets: CubeTileDatasets,
    *,
    model_name: str,
    in_channels: int,
    run_dir: str,
    config: Any,
    normalization: dict[str, Any],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """Runs inside a Ray worker: the engine's single-process path on the cube's tiles."""
    from slumwatch.actors.training import train_local

    built = datasets()  # read the tiles once: training, then threshold calibration on the val set
    result = train_local(
        config=config,
        model_name=model_name,
        model_kwargs={"num_classes": NUM_CLASSES, "in_channels": in_channels},
        method_name="supervised",
        method_kwargs={},
        dataset_builder=lambda: built,
        run_dir=Path(run_dir),
        normalization=normalization,
        metadata=metadata,
    )
    summary = result.to_dict()
    best = result.best_path or result.latest_path
    if best is not None:
        summary["threshold"], summary["threshold_f1"] = _calibrate(
            best, built[1], batch_size=config.batch_size
        )
    return summary


def _calibrate(checkpoint: Path, val_ds: Any, *, batch_size: int) -> tuple[float, float]:
    """F1-optimal slum threshold of ``checkpoint`` on the held-out validation tiles."""
    import torch
    from torch.utils.data import DataLoader

    from slumwatch.models.calibration import best_f1_threshold
    from slumwatch.models.checkpoint import load_checkpoint
    from slumwatch.models.inference import predict_proba

    model = load_checkpoint(checkpoint).model
    probs, labels = [], []
    for batch in DataLoader(val_ds, batch_size=batch_size, shuffle=False):
        probs.append(predict_proba(model, batch["image"])[:, SLUM_CLASS].flatten())
        labels.append(batch["label"].flatten())
    return best_f1_threshold(torch.cat(probs), torch.cat(labels))


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

    Tile positions are split spatially and stratified by slum share
    (:func:`~slumwatch.catalogs.splits.make_splits`): ``train_fraction`` of them train, the
    rest validate (the same positions in every year), so validation is on unseen ground.

    Returns:
        (path of the best checkpoint, its metadata incl. the held-out tile ids).
    """
    import ray

    from slumwatch.actors.cluster import ray_cluster
    from slumwatch.catalogs.cube import CubeRef
    from slumwatch.catalogs.splits import SplitSpec, make_splits
    from slumwatch.models.engine import TrainConfig

    arrays = CubeArrays.open(cube)
    _, n_bands, height, width = arrays.shape
    spec = TileSpec(tile_size)
    splits = make_splits(
        cube=CubeRef(Path(cube)),
        tile=spec,
        years=train_years,
        spec=SplitSpec(train=train_fraction, val=1.0 - train_fraction, test=0.0, seed=seed),
    )
    train_tiles = splits.split("train")
    grid = [w.tile_id for w in iter_tiles(spec, height=height, width=width)]
    train_set = set(train_tiles)
    held_out = tuple(t for t in grid if t not in train_set)  # val plus tiles left out of the split
    val_tiles = splits.split("val")
    cube_years = cube_info(cube).years
    whole = cube_band_scaling(cube)
    year_scalings = cube_year_scalings(cube, fallback=whole)
    normalization = normalization_record(year_scalings, reference=whole)
    datasets = CubeTileDatasets(
        cube=Path(cube),
        cube_years=cube_years,
        train_years=tuple(train_years),
        val_years=tuple(train_years),
        train_tiles=train_tiles,
        val_tiles=val_tiles,
        spec=spec,
        scaling=year_scalings,
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
        "held_out_tiles": list(held_out),
        "split_sha256": splits.sha256,
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
                normalization=normalization,
                metadata=metadata,
            )
        )
    best = Path(result["best_path"] or result["latest_path"])
    meta = {
        **metadata,
        "best_miou": result["best_miou"],
        "threshold": result.get("threshold", DEFAULT_THRESHOLD),
        "threshold_f1": result.get("threshold_f1"),
        "history": result["history"],
    }
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
    scaling = scaling_for_checkpoint(raw["normalization"], cube=cube)
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
