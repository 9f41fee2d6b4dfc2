"""Torch datasets built from a cube: the picklable builder handed to training workers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slumwatch.actors.tiles import Scaling, load_labelled_tiles
from slumwatch.catalogs.tiling import TileSpec

__all__ = ["CubeTileDatasets"]


@dataclass(frozen=True)
class CubeTileDatasets:
    """Builds ``(train, val, unlabeled)`` torch datasets of labelled cube tiles.

    Picklable (paths and plain values only), so Ray Train workers can call it and read
    the cube themselves instead of receiving arrays through the object store.
    """

    cube: Path
    cube_years: tuple[int, ...]
    train_years: tuple[int, ...]
    val_years: tuple[int, ...]
    train_tiles: tuple[str, ...]
    val_tiles: tuple[str, ...]
    spec: TileSpec
    scaling: Scaling
    crop_size: int
    seed: int = 0
    scale_range: tuple[float, float] = (0.5, 2.0)

    def __call__(self) -> tuple[Any, Any, Any]:
        from slumwatch.models.augment import AugmentConfig
        from slumwatch.models.data import TileDataset

        train = load_labelled_tiles(
            cube=self.cube,
            years=self.train_years,
            cube_years=self.cube_years,
            spec=self.spec,
            scaling=self.scaling,
            tile_ids=self.train_tiles,
        )
        val = load_labelled_tiles(
            cube=self.cube,
            years=self.val_years,
            cube_years=self.cube_years,
            spec=self.spec,
            scaling=self.scaling,
            tile_ids=self.val_tiles,
        )
        augment = AugmentConfig(crop_size=self.crop_size, scale_range=self.scale_range)
        train_ds = TileDataset(train.images, train.labels, augment=augment, seed=self.seed)
        val_ds = TileDataset(val.images, val.labels, augment=None)
        return train_ds, val_ds, None
