"""The tile grid shared by training, inference and label splits.

A :class:`TileSpec` cuts a raster of ``height x width`` pixels into square tiles of
``size`` pixels whose *core* regions tile the raster exactly once, and whose *read*
windows extend the core by ``overlap`` pixels of context on every side (clipped to the
raster). Inference predicts on the read window and writes back only the core, so no
pixel is written twice and no blending buffer of the whole scene is needed.

Tile ids are stable: ``r{row:05d}_c{col:05d}`` from the tile's position in the grid,
independent of raster size beyond that position, so ids survive a re-run and can be
stored in split files.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["TileSpec", "TileWindow", "TilingError", "iter_tiles", "tile_count"]


class TilingError(ValueError):
    """A tile grid was asked for with impossible parameters."""


@dataclass(frozen=True, slots=True)
class TileSpec:
    """How to cut a raster into tiles.

    Attributes:
        size: Edge length of a tile's core region, in pixels.
        overlap: Context added on every side of the core for reading, in pixels.
    """

    size: int = 256
    overlap: int = 0

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise TilingError(f"TileSpec.size must be positive, got {self.size}")
        if self.overlap < 0:
            raise TilingError(f"TileSpec.overlap must be >= 0, got {self.overlap}")
        if self.overlap >= self.size:
            raise TilingError(f"TileSpec.overlap ({self.overlap}) must be smaller than size ({self.size})")


@dataclass(frozen=True, slots=True)
class TileWindow:
    """One tile of a grid, in pixel coordinates of the full raster.

    ``row_off/col_off/height/width`` is the core region (written back);
    ``read_*`` is the read window (core plus overlap, clipped to the raster).
    Edge tiles have a core smaller than ``TileSpec.size`` when the raster size is not
    a multiple of it.
    """

    tile_id: str
    row: int
    col: int
    row_off: int
    col_off: int
    height: int
    width: int
    read_row_off: int
    read_col_off: int
    read_height: int
    read_width: int

    @property
    def core_slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the core region in full-raster coordinates."""
        return (
            slice(self.row_off, self.row_off + self.height),
            slice(self.col_off, self.col_off + self.width),
        )

    @property
    def read_slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the read window in full-raster coordinates."""
        return (
            slice(self.read_row_off, self.read_row_off + self.read_height),
            slice(self.read_col_off, self.read_col_off + self.read_width),
        )

    @property
    def core_in_read(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices that cut the core out of an array read with :attr:`read_slices`."""
        r0 = self.row_off - self.read_row_off
        c0 = self.col_off - self.read_col_off
        return (slice(r0, r0 + self.height), slice(c0, c0 + self.width))


def tile_count(spec: TileSpec, *, height: int, width: int) -> tuple[int, int]:
    """Number of tile rows and columns that cover a ``height x width`` raster."""
    if height <= 0 or width <= 0:
        raise TilingError(f"raster must be non-empty, got {height}x{width}")
    return math.ceil(height / spec.size), math.ceil(width / spec.size)


def iter_tiles(spec: TileSpec, *, height: int, width: int) -> Iterator[TileWindow]:
    """Yield every tile of the grid in row-major order.

    Args:
        spec: tile size and overlap.
        height: raster height in pixels.
        width: raster width in pixels.
    """
    n_rows, n_cols = tile_count(spec, height=height, width=width)
    for row in range(n_rows):
        r0 = row * spec.size
        h = min(spec.size, height - r0)
        rr0 = max(0, r0 - spec.overlap)
        rr1 = min(height, r0 + h + spec.overlap)
        for col in range(n_cols):
            c0 = col * spec.size
            w = min(spec.size, width - c0)
            rc0 = max(0, c0 - spec.overlap)
            rc1 = min(width, c0 + w + spec.overlap)
            yield TileWindow(
                tile_id=f"r{row:05d}_c{col:05d}",
                row=row,
                col=col,
                row_off=r0,
                col_off=c0,
                height=h,
                width=w,
                read_row_off=rr0,
                read_col_off=rc0,
                read_height=rr1 - rr0,
                read_width=rc1 - rc0,
            )
