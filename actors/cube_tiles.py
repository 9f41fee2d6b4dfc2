"""Lazy, picklable views of cube tiles for training and evaluation.

A :class:`TileRef` names one tile of one year of one cube (path, time index, tile window); a
:class:`CubeTileSequence` is a ``Sequence`` of raw images, labels or validity "labels" over a tuple of
refs, reading each tile from the Zarr store on access. Sequences hold only paths and plain values (the
opened Zarr arrays are dropped when pickled), so a dataset builder can be shipped to Ray workers that
read the cube themselves; small ones are materialised into numpy arrays (:func:`materialize`).

Tiles of every ref share one size (``spec.size + 2 * spec.overlap``): edge tiles are padded, padding is
invalid (image 0, label 255), as in :func:`slumwatch.actors.tiles.read_tile`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from slumwatch.actors.tiles import LABEL_IGNORE, CubeArrays, TileReadError, read_tile
from slumwatch.catalogs.tiling import TileSpec, TileWindow, iter_tiles

__all__ = [
    "LABEL_IGNORE",
    "CubeInfo",
    "CubeTileSequence",
    "TileKind",
    "TileRef",
    "cube_info",
    "materialize",
    "plan_tile_refs",
]

TileKind = Literal["image", "label", "valid"]
"""``image``: raw (C, S, S) values; ``label``: (S, S) int64 labels, 255 where invalid; ``valid``: (S, S)
int64, 0 where the pixel has data, 255 where not (a "label" that the weak augmentation crops alongside
the image and :func:`valid_from_label` turns back into a mask)."""

VALID_LABEL = 0
YEAR_ATTR = "slumwatch:years"
ITEMS_ATTR = "slumwatch:items"
GRID_ATTR = "slumwatch:grid"
QUERY_ATTR = "slumwatch:query"


@dataclass(frozen=True)
class TileRef:
    """One tile of one year of one cube.

    Attributes:
        cube: Path of the Zarr store.
        time_index: Index along the cube's ``time`` axis.
        year: The year of that index (for reports).
        window: The tile window (core + read window) in the cube's pixel grid.
        spec: The tile grid the window belongs to (fixes the padded size).
    """

    cube: str
    time_index: int
    year: int
    window: TileWindow
    spec: TileSpec

    @property
    def name(self) -> str:
        """``"<year>/<tile_id>"``."""
        return f"{self.year}/{self.window.tile_id}"


@dataclass(frozen=True)
class CubeInfo:
    """What a cube holds, read from its attributes (no pixels)."""

    path: Path
    years: tuple[int, ...]
    bands: tuple[str, ...]
    height: int
    width: int
    tile_size: int | None
    dtype: str
    item_ids: dict[str, list[str]]
    city: str
    has_labels: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "path": str(self.path),
            "city": self.city,
            "years": list(self.years),
            "bands": list(self.bands),
            "shape": [self.height, self.width],
            "tile_size": self.tile_size,
            "dtype": self.dtype,
            "item_ids": {k: list(v) for k, v in self.item_ids.items()},
        }


def _city_name(path: Path, item_ids: dict[str, list[str]], query: Any) -> str:
    """The collection searched, else item ids stripped of their ``-<year>`` suffix, else the folder name."""
    if isinstance(query, dict):
        collections = query.get("collections")
        if isinstance(collections, list | tuple) and collections:
            return ",".join(str(c) for c in collections)
    stems = set()
    for year, ids in item_ids.items():
        for item_id in ids:
            suffix = f"-{year}"
            stems.add(item_id[: -len(suffix)] if item_id.endswith(suffix) else item_id)
    if len(stems) == 1:
        return stems.pop()
    name = path.name
    return name[: -len(".zarr")] if name.endswith(".zarr") else name


def cube_info(path: Path) -> CubeInfo:
    """Years, bands, shape, tile size and provenance of the cube at ``path``.

    Raises:
        TileReadError: ``path`` is not a cube store.
    """
    import xarray as xr
    import zarr

    path = Path(path)
    arrays = CubeArrays.open(path)
    _, _, height, width = arrays.shape
    attrs: dict[str, Any] = dict(zarr.open_group(str(path), mode="r").attrs)
    with xr.open_zarr(str(path)) as ds:
        years = tuple(int(y) for y in ds["time"].dt.year.values)
        bands = tuple(str(b) for b in ds["band"].values) if "band" in ds.coords else ()
    grid = attrs.get(GRID_ATTR) or {}
    item_ids = {str(k): [str(i) for i in v] for k, v in (attrs.get(ITEMS_ATTR) or {}).items()}
    tile = grid.get("tile")
    return CubeInfo(
        path=path,
        years=years,
        bands=bands,
        height=height,
        width=width,
        tile_size=int(tile) if tile is not None else None,
        dtype=str(arrays.imagery.dtype),
        item_ids=item_ids,
        city=_city_name(path, item_ids, attrs.get(QUERY_ATTR)),
        has_labels=arrays.labels is not None,
    )


def plan_tile_refs(
    *,
    cube: Path,
    tile_ids: Iterable[str] | None,
    years: Sequence[int],
    spec: TileSpec,
    require: Literal["labels", "valid"],
    min_fraction: float,
) -> tuple[TileRef, ...]:
    """Refs of the tiles ``tile_ids`` (all grid tiles when ``None``) in ``years``, filtered by content.

    Args:
        cube: The cube store.
        tile_ids: Tile ids of the cube's grid at ``spec.size`` (e.g. a split), or ``None`` for all.
        years: Years to take the tiles from (each must be in the cube).
        spec: The tile grid.
        require: ``"labels"``: keep a tile-year when at least ``min_fraction`` of its pixels are labelled
            (0/1) and valid; ``"valid"``: when at least ``min_fraction`` of its pixels have data.
        min_fraction: The threshold above.

    Raises:
        TileReadError: a year is not in the cube, unknown tile ids, or labels asked of a cube without any.
    """
    info = cube_info(cube)
    arrays = CubeArrays.open(cube)
    if require == "labels" and arrays.labels is None:
        raise TileReadError(f"{cube}: the cube has no 'labels' array (run rasterize_labels first)")
    index = {year: i for i, year in enumerate(info.years)}
    missing = [y for y in years if y not in index]
    if missing:
        raise TileReadError(f"{cube}: years {missing} are not in the cube (it has {list(info.years)})")
    windows = {w.tile_id: w for w in iter_tiles(spec, height=info.height, width=info.width)}
    wanted = list(windows) if tile_ids is None else list(tile_ids)
    unknown = [t for t in wanted if t not in windows]
    if unknown:
        raise TileReadError(
            f"{cube}: tile ids {unknown[:5]} are not on its {spec.size}-pixel grid "
            f"({len(windows)} tiles); do the splits belong to this cube?"
        )
    refs: list[TileRef] = []
    for year in years:
        for tile_id in wanted:
            window = windows[tile_id]
            rows, cols = window.core_slices
            t = index[year]
            valid = (
                np.asarray(arrays.valid[t, rows, cols]).astype(bool)
                if arrays.valid is not None
                else np.any(np.asarray(arrays.imagery[t, :, rows, cols]) != 0, axis=0)
            )
            keep = valid
            if require == "labels":
                assert arrays.labels is not None
                keep = valid & (np.asarray(arrays.labels[t, rows, cols]) != LABEL_IGNORE)
            if keep.sum() >= min_fraction * spec.size * spec.size and keep.any():
                refs.append(TileRef(cube=str(cube), time_index=t, year=year, window=window, spec=spec))
    return tuple(refs)


class CubeTileSequence(Sequence[Any]):
    """Lazy (N, ...) array-like over ``refs``: item ``i`` reads tile ``refs[i]`` from its cube.

    Picklable: the opened Zarr arrays are a per-process cache, dropped by ``__getstate__``.
    """

    def __init__(self, refs: Sequence[TileRef], kind: TileKind) -> None:
        if kind not in ("image", "label", "valid"):
            raise ValueError(f"kind must be 'image', 'label' or 'valid', got {kind!r}")
        self.refs = tuple(refs)
        self.kind: TileKind = kind
        self._arrays: dict[str, CubeArrays] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"refs": self.refs, "kind": self.kind}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.refs = state["refs"]
        self.kind = state["kind"]
        self._arrays = {}

    def __len__(self) -> int:
        return len(self.refs)

    def _open(self, cube: str) -> CubeArrays:
        arrays = self._arrays.get(cube)
        if arrays is None:
            arrays = self._arrays[cube] = CubeArrays.open(Path(cube))
        return arrays

    def read(self, index: int) -> npt.NDArray[Any]:
        """The tile ``refs[index]`` as this sequence's kind."""
        ref = self.refs[index]
        image, valid, labels = read_tile(
            self._open(ref.cube), time_index=ref.time_index, window=ref.window, spec=ref.spec
        )
        if self.kind == "image":
            return image
        if self.kind == "valid":
            return np.where(valid, VALID_LABEL, LABEL_IGNORE).astype(np.int64)
        if labels is None:
            raise TileReadError(f"{ref.cube}: the cube has no 'labels' array")
        return np.where(valid, labels, LABEL_IGNORE).astype(np.int64)

    @overload
    def __getitem__(self, index: int) -> npt.NDArray[Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[npt.NDArray[Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self.read(i) for i in range(*index.indices(len(self)))]
        if isinstance(index, np.integer):
            index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"tile index {index} out of range for {len(self)} tiles")
        return self.read(index % len(self))

    def __iter__(self) -> Iterator[npt.NDArray[Any]]:
        for i in range(len(self)):
            yield self.read(i)

    def nbytes_estimate(self) -> int:
        """Approximate bytes of the materialised array (from the first tile)."""
        if not self.refs:
            return 0
        return int(self.read(0).nbytes) * len(self.refs)


def materialize(tiles: CubeTileSequence) -> npt.NDArray[Any]:
    """Read every tile into one stacked numpy array (N, ...)."""
    if len(tiles) == 0:
        raise TileReadError("no tiles to read")
    return np.stack([tiles.read(i) for i in range(len(tiles))])


def valid_from_label(sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """TileDataset transform: turn a ``"valid"``-kind label (after weak augmentation) into a bool mask."""
    del rng
    label = sample.pop("label", None)
    if label is not None:
        sample["valid"] = label != LABEL_IGNORE
    return sample
