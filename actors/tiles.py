"""Read fixed-size tiles (image, valid mask, labels) out of an imagery cube.

The bridge between ``catalogs`` (Zarr cubes, tile grid) and ``models`` (numpy/torch
tiles): every read window of a :class:`~slumwatch.catalogs.tiling.TileSpec` grid is
padded to ``size + 2 * overlap`` pixels so tiles stack into one batch; padding is
marked invalid (image 0, label 255).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from slumwatch.catalogs.tiling import TileSpec, TileWindow, iter_tiles
from slumwatch.models.data import scale_to_unit
from slumwatch.zarr_io import StoreError, optional_array, require_array

__all__ = [
    "LABEL_IGNORE",
    "BandScaling",
    "CubeArrays",
    "LabelledTiles",
    "Scaling",
    "TileReadError",
    "load_labelled_tiles",
    "read_tile",
    "scaling_for",
]

LABEL_IGNORE = 255


class TileReadError(ValueError):
    """A cube cannot be read as tiles (missing variable, wrong dims, bad window)."""


@dataclass(frozen=True, slots=True)
class BandScaling:
    """Per-band linear stretch to [0, 1]: ``(v - low) / (high - low)``, clipped.

    Computed from the cube (percentiles of valid pixels) so uint8 and uint16 imagery,
    and sensors with other gains, reach the network on the same scale.
    """

    bands: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (len(self.bands) == len(self.low) == len(self.high)):
            raise TileReadError("BandScaling bands, low and high must have equal length")
        for band, lo, hi in zip(self.bands, self.low, self.high, strict=True):
            if not hi > lo:
                raise TileReadError(f"BandScaling for band {band!r}: high {hi} must exceed low {lo}")

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(C, H, W) or (N, C, H, W) raw values -> float32 in [0, 1] (:func:`scale_to_unit`)."""
        return scale_to_unit(image, self.low, self.high)

    def to_dict(self) -> dict[str, list[float] | list[str]]:
        return {"bands": list(self.bands), "low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> BandScaling:
        return cls(bands=tuple(data["bands"]), low=tuple(data["low"]), high=tuple(data["high"]))


Scaling = BandScaling | Mapping[int, BandScaling]
"""One stretch for the whole cube, or one per time index (per-scene normalisation)."""


def scaling_for(scaling: Scaling, time_index: int) -> BandScaling:
    """The stretch that applies to time step ``time_index``."""
    if isinstance(scaling, BandScaling):
        return scaling
    try:
        return scaling[time_index]
    except KeyError as err:
        raise TileReadError(f"no band scaling for time index {time_index} (have {sorted(scaling)})") from err


@dataclass(frozen=True)
class CubeArrays:
    """The arrays of an opened cube store (lazy Zarr arrays, no data read yet)."""

    path: Path
    imagery: zarr.Array  # (T, C, H, W)
    valid: zarr.Array | None  # (T, H, W)
    labels: zarr.Array | None  # (T, H, W)

    @classmethod
    def open(cls, path: Path) -> CubeArrays:
        try:
            group = zarr.open_group(str(path), mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
            raise TileReadError(f"{path}: not a Zarr cube ({err})") from err
        try:
            imagery = require_array(group, "imagery", where=path)
            valid = optional_array(group, "valid", where=path)
            labels = optional_array(group, "labels", where=path)
        except StoreError as err:
            raise TileReadError(f"not a usable cube: {err}") from err
        if imagery.ndim != 4:
            raise TileReadError(f"{path}/imagery must be (time, band, y, x), got {imagery.ndim} dims")
        return cls(path=Path(path), imagery=imagery, valid=valid, labels=labels)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        t, c, h, w = self.imagery.shape
        return int(t), int(c), int(h), int(w)


def _pad(arr: np.ndarray, window: TileWindow, spec: TileSpec, fill: float) -> np.ndarray:
    """Place a read window into a full ``size + 2*overlap`` canvas at its grid position."""
    full = spec.size + 2 * spec.overlap
    canvas = np.full((*arr.shape[:-2], full, full), fill, dtype=arr.dtype)
    r0 = window.read_row_off - (window.row_off - spec.overlap)
    c0 = window.read_col_off - (window.col_off - spec.overlap)
    canvas[..., r0 : r0 + window.read_height, c0 : c0 + window.read_width] = arr
    return canvas


def read_tile(
    cube: CubeArrays, *, time_index: int, window: TileWindow, spec: TileSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read one padded tile.

    Returns:
        image (C, S, S) raw dtype, valid (S, S) bool, labels (S, S) uint8 or None,
        with S = spec.size + 2 * spec.overlap; padding is invalid / 255.
    """
    rows, cols = window.read_slices
    image = np.asarray(cube.imagery[time_index, :, rows, cols])
    if cube.valid is not None:
        valid = np.asarray(cube.valid[time_index, rows, cols]).astype(bool)
    else:
        valid = np.any(image != 0, axis=0)
    image_p = _pad(image, window, spec, 0)
    valid_p = _pad(valid, window, spec, False)
    labels_p = None
    if cube.labels is not None:
        labels_p = _pad(np.asarray(cube.labels[time_index, rows, cols]), window, spec, LABEL_IGNORE)
    return image_p, valid_p, labels_p


@dataclass(frozen=True)
class LabelledTiles:
    """Tiles stacked for training.

    Attributes:
        images: (N, C, S, S) float32 in [0, 1] (after :class:`BandScaling`).
        labels: (N, S, S) int64; 255 = ignore (no label, no data, padding).
        tile_ids: N ids ``"<year>/<tile_id>"``.
    """

    images: np.ndarray
    labels: np.ndarray
    tile_ids: tuple[str, ...]


def load_labelled_tiles(
    *,
    cube: Path,
    years: Sequence[int],
    cube_years: Sequence[int],
    spec: TileSpec,
    scaling: Scaling,
    tile_ids: Iterable[str] | None = None,
    min_labelled_fraction: float = 0.05,
) -> LabelledTiles:
    """Read labelled tiles of the given years (all grid tiles, or only ``tile_ids``).

    Tiles with less than ``min_labelled_fraction`` labelled, valid pixels are skipped.
    """
    arrays = CubeArrays.open(cube)
    if arrays.labels is None:
        raise TileReadError(f"{cube}: the cube has no 'labels' array to train on")
    _, _, height, width = arrays.shape
    wanted = None if tile_ids is None else set(tile_ids)
    index = {int(y): i for i, y in enumerate(cube_years)}
    missing = [y for y in years if y not in index]
    if missing:
        raise TileReadError(f"{cube}: years {missing} are not in the cube (has {sorted(index)})")
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    ids: list[str] = []
    for year in years:
        for window in iter_tiles(spec, height=height, width=width):
            if wanted is not None and window.tile_id not in wanted:
                continue
            image, valid, lab = read_tile(arrays, time_index=index[year], window=window, spec=spec)
            assert lab is not None
            lab = np.where(valid, lab, LABEL_IGNORE)
            if np.mean(lab != LABEL_IGNORE) < min_labelled_fraction:
                continue
            images.append(scaling_for(scaling, index[year]).apply(image))
            labels.append(lab.astype(np.int64))
            ids.append(f"{year}/{window.tile_id}")
    if not images:
        raise TileReadError(f"{cube}: no labelled tiles found for years {list(years)}")
    return LabelledTiles(images=np.stack(images), labels=np.stack(labels), tile_ids=tuple(ids))
