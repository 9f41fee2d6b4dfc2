"""Window-by-window downsampling of large rasters, so a citywide grid never has to fit in memory.

:func:`read_downsampled` walks the grid in windows of about :data:`WINDOW_PX` pixels a side (aligned
to the block factor, and to the storage chunks where that is cheap), reduces each window with a
:data:`BlockReducer`, and writes the result into a small output array. Peak memory is one window
plus the output (at most ``max_side`` pixels on the long side).

Reducers provided:

- :func:`stride_reduce` - keep every ``factor``-th pixel (fast, aliasing)
- :func:`mean_reduce` - per-band block mean ignoring nodata pixels (imagery backgrounds)
- :func:`prediction_reduce` - slum share of the usable pixels of each block (``slum_prob`` maps)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

MAX_MAP_SIDE: Final = 1024
"""Longest side, in pixels, of a downsampled map."""
WINDOW_PX: Final = 2048
"""Target side of one read window, in source pixels."""
MAX_ALIGNED_WINDOW_PX: Final = 4096
"""Largest window side accepted to align windows with the storage chunks."""

PROB_SCALE: Final = 250
"""``slum_prob`` stores probability × 250."""
PROB_NODATA: Final = 255
SLUM_THRESHOLD: Final = 0.5
"""Probability from which a pixel counts as slum."""
MIN_VALID_SHARE: Final = 0.5
"""A downsampled block with fewer usable pixels than this share is shown as no data."""
IMAGERY_NODATA: Final = 0

WindowReader = Callable[[slice, slice], npt.NDArray[Any]]
"""``read(ys, xs)`` returns the window ``[..., ys, xs]`` of the source."""
BlockReducer = Callable[[npt.NDArray[Any], int], npt.NDArray[Any]]
"""``reduce(window, factor)`` maps ``(..., h, w)`` to ``(..., ceil(h / factor), ceil(w / factor))``."""


def downsample_factor(*, height: int, width: int, max_side: int = MAX_MAP_SIDE) -> int:
    """Return the smallest integer factor that brings the long side to at most ``max_side``."""
    if height <= 0 or width <= 0 or max_side <= 0:
        raise ValueError(f"sizes must be positive, got {height}×{width} and max_side={max_side}")
    return max(1, math.ceil(max(height, width) / max_side))


def window_size(*, factor: int, chunk: int | None = None, target: int = WINDOW_PX) -> int:
    """Return a window side that is a multiple of ``factor`` (and of ``chunk`` when affordable)."""
    base = factor
    if chunk:
        aligned = math.lcm(factor, chunk)
        if aligned <= MAX_ALIGNED_WINDOW_PX:
            base = aligned
    return base * max(1, target // base)


def read_downsampled(
    read: WindowReader,
    *,
    height: int,
    width: int,
    factor: int,
    reduce: BlockReducer,
    chunk: tuple[int, int] | None = None,
    target_window: int = WINDOW_PX,
) -> npt.NDArray[Any]:
    """Downsample a ``(..., height, width)`` source by ``factor``, reading one window at a time.

    Args:
        read: returns a window of the source for row and column slices.
        height: source rows.
        width: source columns.
        factor: block size; output is ``(..., ceil(height / factor), ceil(width / factor))``.
        reduce: block reducer applied to each window (see the module docstring).
        chunk: storage chunk (rows, cols), used to align windows with chunks.
        target_window: approximate window side in source pixels.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    win_y = window_size(factor=factor, chunk=chunk[0] if chunk else None, target=target_window)
    win_x = window_size(factor=factor, chunk=chunk[1] if chunk else None, target=target_window)
    out_h, out_w = math.ceil(height / factor), math.ceil(width / factor)
    out: npt.NDArray[Any] | None = None
    for y0 in range(0, height, win_y):
        y1 = min(height, y0 + win_y)
        for x0 in range(0, width, win_x):
            x1 = min(width, x0 + win_x)
            block = reduce(read(slice(y0, y1), slice(x0, x1)), factor)
            if out is None:
                out = np.empty((*block.shape[:-2], out_h, out_w), dtype=block.dtype)
            out[
                ...,
                y0 // factor : y0 // factor + block.shape[-2],
                x0 // factor : x0 // factor + block.shape[-1],
            ] = block
    if out is None:
        raise ValueError("empty source")
    return out


def stride_reduce(window: npt.NDArray[Any], factor: int) -> npt.NDArray[Any]:
    """Keep the top-left pixel of every ``factor`` × ``factor`` block."""
    return window[..., ::factor, ::factor]


def block_sum(values: npt.NDArray[Any], factor: int) -> npt.NDArray[np.float64]:
    """Sum ``(..., h, w)`` over ``factor`` × ``factor`` blocks (edge blocks padded with zeros)."""
    h, w = values.shape[-2:]
    pad_h, pad_w = -h % factor, -w % factor
    if pad_h or pad_w:
        pad = [(0, 0)] * (values.ndim - 2) + [(0, pad_h), (0, pad_w)]
        values = np.pad(values, pad)
    shape = (*values.shape[:-2], (h + pad_h) // factor, factor, (w + pad_w) // factor, factor)
    return values.reshape(shape).sum(axis=(-3, -1), dtype=np.float64)


def mean_reduce(window: npt.NDArray[Any], factor: int) -> npt.NDArray[np.float32]:
    """Per-band block mean of ``(band, h, w)`` imagery, ignoring pixels whose bands are all nodata (0).

    Blocks without usable pixels are NaN.
    """
    if window.ndim == 2:
        window = window[np.newaxis]
    usable = (window != IMAGERY_NODATA).any(axis=0)
    counts = block_sum(usable, factor)
    sums = block_sum(window, factor)  # nodata pixels are 0 in every band: they add nothing
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return np.where(counts > 0, means, np.nan).astype(np.float32)


def prediction_reduce(window: npt.NDArray[Any], factor: int) -> npt.NDArray[np.float32]:
    """Share of slum pixels (probability ≥ :data:`SLUM_THRESHOLD`) among the usable pixels of each block.

    ``window`` is ``slum_prob`` (uint8, probability × 250, 255 = no data). Blocks whose usable share
    is below :data:`MIN_VALID_SHARE` are NaN (no data).
    """
    usable = window != PROB_NODATA
    slum = usable & (window >= math.ceil(SLUM_THRESHOLD * PROB_SCALE))
    usable_count = block_sum(usable, factor)
    block_pixels = block_sum(np.ones(window.shape[-2:], dtype=np.uint8), factor)
    slum_count = block_sum(slum, factor)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = slum_count / usable_count
    enough = usable_count >= MIN_VALID_SHARE * block_pixels
    return np.where(enough, share, np.nan).astype(np.float32)


def percentile_stretch(
    bands: npt.NDArray[np.floating[Any]], *, low_pct: float = 2.0, high_pct: float = 98.0
) -> npt.NDArray[np.uint8]:
    """Stretch ``(band, h, w)`` float values (NaN = no data) to ``(h, w, 3)`` uint8, per band.

    Each band maps its ``low_pct``–``high_pct`` percentile range to 0–255 (works for any input
    depth, uint8 or uint16 imagery alike). One band gives a grey image; no-data pixels are mid grey.
    """
    out: npt.NDArray[np.float32] = np.empty(bands.shape, dtype=np.float32)
    for i, band in enumerate(bands):
        finite = band[np.isfinite(band)]
        if finite.size == 0:
            out[i] = np.nan
            continue
        low, high = (float(v) for v in np.percentile(finite, [low_pct, high_pct]))
        span = high - low if high > low else 1.0
        out[i] = np.clip((band - low) / span, 0.0, 1.0) * 255.0
    if out.shape[0] == 1:
        out = np.repeat(out, 3, axis=0)
    rgb = np.moveaxis(out[:3], 0, -1)
    rgb = np.where(np.isfinite(rgb), rgb, 128.0)
    return np.round(rgb).astype(np.uint8)
