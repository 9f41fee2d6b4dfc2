"""Tiled inference over an imagery cube on a Ray cluster (Ray Data).

Pipeline: tile requests ``{"time_index", "tile_index"}`` → :class:`CubeTileReader`
(reads and scales padded tiles) → :class:`SegmentationPredictor` (loads the model once
in ``__init__``, takes dict batches) → the driver writes each tile's *core* region into
``predictions.zarr``. Core regions tile the raster exactly once and align with the
output chunks, so no blending buffer is needed and each chunk is written whole.

Resumable: finished ``(time, tile)`` pairs are recorded in a manifest written atomically
after their chunks; a re-run skips them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm.auto import tqdm

from slumwatch.actors.tiles import BandScaling, CubeArrays, Scaling, read_tile, scaling_for
from slumwatch.catalogs.tiling import TileSpec, iter_tiles
from slumwatch.zarr_io import require_array

__all__ = [
    "MANIFEST_SUFFIX",
    "PROB_NODATA",
    "PROB_SCALE",
    "CubeTileReader",
    "InferenceError",
    "SegmentationPredictor",
    "create_prediction_store",
    "predict_cube",
    "progress_manifest",
]

PROB_SCALE = 250
PROB_NODATA = 255
MANIFEST_SUFFIX = ".progress.json"
"""The resume manifest lies beside the store (``<store>.progress.json``), outside the Zarr hierarchy."""
MANIFEST_FLUSH_EVERY = 16
"""Batches between manifest writes."""


class InferenceError(RuntimeError):
    """Tiled inference failed (bad checkpoint, cube mismatch...)."""


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class CubeTileReader:
    """Ray Data callable: tile requests → padded, scaled image tiles.

    Input batch: ``time_index`` (N,), ``tile_index`` (N,) int.
    Output adds ``image`` (N, C, S, S) float32 in [0, 1] and ``valid`` (N, S, S) bool.
    """

    def __init__(self, *, cube: str, spec: TileSpec, scalings: Mapping[int, Mapping[str, list]]) -> None:
        self.arrays = CubeArrays.open(Path(cube))
        _, _, height, width = self.arrays.shape
        self.spec = spec
        self.windows = list(iter_tiles(spec, height=height, width=width))
        self.scalings = {int(t): BandScaling.from_dict(dict(d)) for t, d in scalings.items()}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images, valids = [], []
        for t, i in zip(batch["time_index"], batch["tile_index"], strict=True):
            image, valid, _ = read_tile(
                self.arrays, time_index=int(t), window=self.windows[int(i)], spec=self.spec
            )
            images.append(scaling_for(self.scalings, int(t)).apply(image))
            valids.append(valid)
        return {**batch, "image": np.stack(images), "valid": np.stack(valids)}


class SegmentationPredictor:
    """Ray Data callable: loads a checkpoint once, predicts slum probability per tile.

    Input batch: ``image`` (N, C, S, S) float32, ``valid`` (N, S, S) bool.
    Output: the batch without ``image``, plus ``prob`` (N, S, S) uint8 = P(slum) x 250,
    255 where the pixel has no valid data.
    """

    def __init__(self, *, checkpoint: str, device: str = "auto", tta: bool = False) -> None:
        import torch

        from slumwatch.models.checkpoint import load_checkpoint

        self.device = torch.device(_resolve_device(device))
        loaded = load_checkpoint(Path(checkpoint), map_location=self.device)
        self.model = loaded.model.to(self.device).eval()
        self.tta = tta

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from slumwatch.models.inference import predict_proba

        images = torch.from_numpy(np.array(batch["image"], dtype=np.float32, copy=True)).to(self.device)
        proba = predict_proba(self.model, images, tta_flip=self.tta)[:, 1]
        prob = np.rint(proba.float().cpu().numpy() * PROB_SCALE).astype(np.uint8)
        prob = np.where(batch["valid"], prob, PROB_NODATA).astype(np.uint8)
        out = {k: v for k, v in batch.items() if k != "image"}
        out["prob"] = prob
        return out


@dataclass(frozen=True)
class _Manifest:
    path: Path
    done: frozenset[tuple[int, int]]

    @classmethod
    def load(cls, path: Path) -> _Manifest:
        if not path.exists():
            return cls(path=path, done=frozenset())
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(path=path, done=frozenset((int(t), int(i)) for t, i in data["done"]))

    @staticmethod
    def write(path: Path, done: set[tuple[int, int]], meta: Mapping[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**meta, "done": sorted(done)}), encoding="utf-8")
        tmp.replace(path)


def progress_manifest(out: Path) -> Path:
    """Path of the resume manifest of the prediction store ``out``."""
    return out.with_name(out.name + MANIFEST_SUFFIX)


def create_prediction_store(*, cube: Path, out: Path, spec: TileSpec) -> None:
    """Create ``predictions.zarr`` on the cube's grid (coords, CRS), without data chunks.

    ``slum_prob`` (time, y, x) uint8, chunks (1, size, size) = the tile grid.
    """
    import dask.array as da
    import xarray as xr

    src = xr.open_zarr(str(cube), decode_coords="all")
    t_len, height, width = src.sizes["time"], src.sizes["y"], src.sizes["x"]
    empty = da.full((t_len, height, width), PROB_NODATA, dtype=np.uint8, chunks=(1, spec.size, spec.size))
    coords = {name: src.coords[name] for name in ("time", "y", "x") if name in src.coords}
    ds = xr.Dataset({"slum_prob": (("time", "y", "x"), empty)}, coords=coords)
    if "spatial_ref" in src.coords:
        ds = ds.assign_coords(spatial_ref=src.coords["spatial_ref"])
        ds["slum_prob"].attrs["grid_mapping"] = "spatial_ref"
    ds["slum_prob"].attrs.update(
        {"long_name": "slum probability", "scale": 1.0 / PROB_SCALE, "nodata": PROB_NODATA}
    )
    ds.to_zarr(str(out), mode="w", compute=False, consolidated=False)


def predict_cube(
    *,
    cube: Path,
    checkpoint: Path,
    out: Path,
    spec: TileSpec,
    scaling: Scaling,
    time_indices: Sequence[int] | None = None,
    batch_size: int = 8,
    num_actors: int = 1,
    device: str = "auto",
    use_gpu: bool = False,
    progress: bool = True,
) -> Path:
    """Predict every tile of every year of ``cube`` into ``out`` (Zarr), on Ray Data.

    ``scaling`` is one band stretch for the cube or one per time index. Needs a running
    Ray (``ray.init``); resumes from the store's manifest.

    Returns:
        ``out``.
    """
    import ray

    if not Path(checkpoint).is_file():
        raise InferenceError(f"checkpoint not found: {checkpoint}")
    arrays = CubeArrays.open(cube)
    t_len, _, height, width = arrays.shape
    windows = list(iter_tiles(spec, height=height, width=width))
    manifest_path = progress_manifest(Path(out))
    meta = {"cube": str(cube), "checkpoint": str(checkpoint), "tile_size": spec.size, "overlap": spec.overlap}
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        if any(previous.get(k) != v for k, v in meta.items()):
            create_prediction_store(cube=cube, out=out, spec=spec)  # different run: start over
    else:
        create_prediction_store(cube=cube, out=out, spec=spec)
    manifest = _Manifest.load(manifest_path)
    times = range(t_len) if time_indices is None else time_indices
    todo = [
        {"time_index": t, "tile_index": i}
        for t in times
        for i in range(len(windows))
        if (t, i) not in manifest.done
    ]
    done = set(manifest.done)
    if not todo:
        return Path(out)
    prob_arr = require_array(zarr.open_group(str(out), mode="r+"), "slum_prob", where=out)
    ds: ray.data.Dataset = ray.data.from_items(todo)
    ds = ds.map_batches(
        CubeTileReader,
        fn_constructor_kwargs={
            "cube": str(cube),
            "spec": spec,
            "scalings": {t: scaling_for(scaling, t).to_dict() for t in range(t_len)},
        },
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=1),
        batch_format="numpy",
    )
    ds = ds.map_batches(
        SegmentationPredictor,
        fn_constructor_kwargs={"checkpoint": str(checkpoint), "device": device},
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_gpus=1 if use_gpu else 0,
        batch_format="numpy",
    )
    bar = tqdm(total=len(todo), desc="inference tiles", unit="tile", disable=not progress)
    for n, batch in enumerate(ds.iter_batches(batch_size=batch_size, batch_format="numpy")):
        for t, i, prob in zip(batch["time_index"], batch["tile_index"], batch["prob"], strict=True):
            window = windows[int(i)]
            r0 = spec.overlap
            core = prob[r0 : r0 + window.height, r0 : r0 + window.width]
            rows, cols = window.core_slices
            prob_arr[int(t), rows, cols] = core
            done.add((int(t), int(i)))
        bar.update(len(batch["prob"]))
        if n % MANIFEST_FLUSH_EVERY == 0:
            _Manifest.write(manifest_path, done, meta)
    bar.close()
    _Manifest.write(manifest_path, done, meta)
    return Path(out)
