"""Position-keyed hashing and noise: every random value is a pure function of where it is.

Nothing here keeps a random stream. A pixel's noise is a hash of ``(key, row, col)`` in
*global* raster coordinates, and smooth noise interpolates hashed lattice values at
coordinates in metres, so any window of a scene can be rendered alone and gives exactly
the pixels of the whole-scene render.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "block_rng",
    "fbm",
    "hash_key",
    "hash_unit",
    "pixel_normal",
    "pixel_uniform",
    "value_noise",
]

FloatArray = npt.NDArray[np.float32]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_ROW_PRIME = 0xD6E8FEB86659FD93
_COL_PRIME = 0xA0761D6478BD642F
#: Offset that makes signed block indices non-negative for :class:`numpy.random.SeedSequence`.
_INDEX_OFFSET = 1 << 31
_U53 = float(1 << 53)
#: sqrt(6): scales the sum of two uniforms to unit variance.
_TRIANGULAR_SCALE = 6.0**0.5


def _mix_int(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def hash_key(*parts: int | str) -> int:
    """A 64-bit key from integers and short strings (stable across runs and platforms)."""
    z = _GOLDEN
    for part in parts:
        value = int.from_bytes(part.encode(), "little") if isinstance(part, str) else int(part)
        z = _mix_int(z ^ _mix_int(value + _GOLDEN))
    return z


def hash_unit(*parts: int | str) -> float:
    """A uniform float in ``[0, 1)`` from integers and short strings."""
    return (hash_key(*parts) >> 11) / _U53


def block_rng(*parts: int | str) -> np.random.Generator:
    """A numpy generator seeded by a hash of ``parts`` (e.g. seed, tag, block indices)."""
    key = hash_key(*parts)
    return np.random.default_rng(np.random.SeedSequence([key & 0xFFFFFFFF, key >> 32, _INDEX_OFFSET]))


def _mix_array(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(_MIX1)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


def _hash_grid(key: int, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """64-bit hashes of ``(key, row, col)`` on the outer product of ``rows`` x ``cols``."""
    r = _mix_array(rows.astype(np.uint64) * np.uint64(_ROW_PRIME) + np.uint64(key & _MASK64))
    c = cols.astype(np.uint64) * np.uint64(_COL_PRIME)
    return _mix_array(r[:, None] ^ c[None, :])


def pixel_uniform(key: int, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> FloatArray:
    """Uniform ``[0, 1)`` noise per pixel, keyed by global ``rows`` x ``cols`` indices."""
    h = _hash_grid(key, rows, cols)
    return ((h >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))).astype(np.float32)


def pixel_normal(
    key: int, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
) -> tuple[FloatArray, npt.NDArray[np.uint8]]:
    """Zero-mean unit-variance (triangular) noise per pixel, plus 4 spare random bits per pixel.

    The spare bits (0-15) dither the low bits of 16-bit output.
    """
    h = _hash_grid(key, rows, cols)
    low = np.uint64(0xFFFFFF)
    total = ((h & low) + ((h >> np.uint64(24)) & low)).astype(np.float32)
    normal = (total * np.float32(_TRIANGULAR_SCALE / (1 << 24)) - np.float32(_TRIANGULAR_SCALE)).astype(
        np.float32
    )
    spare = (h >> np.uint64(60)).astype(np.uint8)
    return normal, spare


def _smoothstep(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return t * t * (3.0 - 2.0 * t)


def value_noise(
    key: int, xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64], *, cell: float
) -> FloatArray:
    """Smooth value noise in ``[-1, 1]`` on the grid ``ys`` x ``xs`` (coordinates in metres).

    Lattice values are hashed at integer multiples of ``cell`` and interpolated with a
    smoothstep, so the value at a point depends on nothing but ``key``, the point and ``cell``.
    """
    gx = xs / cell
    gy = ys / cell
    ix = np.floor(gx).astype(np.int64)
    iy = np.floor(gy).astype(np.int64)
    sx = _smoothstep(gx - ix).astype(np.float32)[None, :]
    sy = _smoothstep(gy - iy).astype(np.float32)[:, None]
    x0, y0 = int(ix.min()), int(iy.min())
    lat_cols = np.arange(x0, int(ix.max()) + 2, dtype=np.int64)
    lat_rows = np.arange(y0, int(iy.max()) + 2, dtype=np.int64)
    h = _hash_grid(key, lat_rows, lat_cols)
    lattice = (
        (h >> np.uint64(40)).astype(np.float32) * np.float32(2.0 / (1 << 24)) - np.float32(1.0)
    ).astype(np.float32)
    cx = ix - x0
    cy = iy - y0
    # interpolate along x on the (few) lattice rows first, then along y: separable and cheap
    along_x = lattice[:, cx] + (lattice[:, cx + 1] - lattice[:, cx]) * sx
    upper = along_x[cy]
    lower = along_x[cy + 1]
    return (upper + (lower - upper) * sy).astype(np.float32, copy=False)


def fbm(
    key: int,
    xs: npt.NDArray[np.float64],
    ys: npt.NDArray[np.float64],
    *,
    cells: tuple[float, ...],
    weights: tuple[float, ...],
) -> FloatArray:
    """Weighted sum of value-noise octaves (normalised so the weights sum to one)."""
    total = float(sum(weights))
    out = np.zeros((ys.size, xs.size), dtype=np.float32)
    for octave, (cell, weight) in enumerate(zip(cells, weights, strict=True)):
        out += np.float32(weight / total) * value_noise(hash_key(key, octave), xs, ys, cell=cell)
    return out
