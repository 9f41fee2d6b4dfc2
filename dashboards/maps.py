"""Draw the map PNGs: one per year (slum overlay on imagery) and the first→last change map.

Inputs are already downsampled (see :mod:`slumwatch.dashboards.raster`): a slum share per block
(NaN = no data) and optionally an RGB background of the same size. Small grids are enlarged by an
integer factor (nearest neighbour) so the maps stay legible on the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from slumwatch.dashboards.formatting import format_length

MIN_DISPLAY_SIDE: Final = 512
"""Maps smaller than this (long side) are enlarged by an integer factor."""
SLUM_SHARE_THRESHOLD: Final = 0.5
"""A downsampled block is drawn as slum when at least this share of its usable pixels is slum."""

Rgb = tuple[int, int, int]
SLUM_RGB: Final[Rgb] = (216, 27, 96)
SLUM_FILL_ALPHA: Final = 0.45
OUTLINE_PX: Final = 2
NEW_RGB: Final[Rgb] = (213, 94, 0)
CLEARED_RGB: Final[Rgb] = (0, 114, 178)
STABLE_RGB: Final[Rgb] = (204, 121, 167)
CHANGE_FILL_ALPHA: Final = 0.8
NO_BACKGROUND_RGB: Final[Rgb] = (236, 239, 241)
HATCH_BASE_RGB: Final[Rgb] = (214, 214, 214)
HATCH_LINE_RGB: Final[Rgb] = (140, 140, 140)
HATCH_PERIOD_PX: Final = 8
HATCH_LINE_PX: Final = 2
CHANGE_BACKGROUND_LIGHTEN: Final = 0.45
"""Share of white mixed into the grey background of the change map, so the classes stand out."""

SCALE_BAR_SHARE: Final = 0.22
"""Longest scale bar, as a share of the map width."""
SCALE_BAR_MARGIN_PX: Final = 10
SCALE_BAR_HEIGHT_PX: Final = 5
SCALE_FONT_PX: Final = 13
SCALE_BOX_ALPHA: Final = 210
SCALE_BOX_PAD_PX: Final = 4
SCALE_REFERENCE_WIDTH_PX: Final = 600
"""Scale-bar sizes are given for a map this wide and grow with wider maps (shown at the same width)."""
NICE_STEPS: Final = (1.0, 2.0, 5.0)
LUMA_WEIGHTS: Final = (0.299, 0.587, 0.114)
PNG_COMPRESS_LEVEL: Final = 6


@dataclass(frozen=True)
class MapGeometry:
    """How a downsampled grid is displayed: enlargement factor and metres per display pixel."""

    upscale: int
    metres_per_px: float | None

    @classmethod
    def for_grid(cls, *, height: int, width: int, factor: int, resolution_m: float | None) -> MapGeometry:
        """Geometry for a ``height`` × ``width`` grid that was downsampled by ``factor``."""
        upscale = max(1, MIN_DISPLAY_SIDE // max(height, width))
        metres = resolution_m * factor / upscale if resolution_m else None
        return cls(upscale=upscale, metres_per_px=metres)


def _enlarge(values: npt.NDArray[Any], upscale: int) -> npt.NDArray[Any]:
    if upscale == 1:
        return values
    return np.repeat(np.repeat(values, upscale, axis=0), upscale, axis=1)


def _hatch(shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    rows, cols = np.indices(shape)
    lines = ((rows + cols) % HATCH_PERIOD_PX) < HATCH_LINE_PX
    out = np.empty((*shape, 3), dtype=np.float32)
    out[:] = HATCH_BASE_RGB
    out[lines] = HATCH_LINE_RGB
    return out


def _outline(mask: npt.NDArray[np.bool_], width: int) -> npt.NDArray[np.bool_]:
    """Pixels of ``mask`` within ``width`` pixels of its boundary (the image edge is not a boundary)."""
    inner = mask
    for _ in range(width):
        padded = np.pad(inner, 1, mode="edge")
        inner = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _blend(base: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_], rgb: Rgb, alpha: float) -> None:
    base[mask] = (1.0 - alpha) * base[mask] + alpha * np.asarray(rgb, dtype=np.float32)


def _background(background: npt.NDArray[np.uint8] | None, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    if background is None:
        out = np.empty((*shape, 3), dtype=np.float32)
        out[:] = NO_BACKGROUND_RGB
        return out
    if background.shape[:2] != shape:
        resized = Image.fromarray(background).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
        background = np.asarray(resized)
    return background.astype(np.float32)


def _nice_length(max_metres: float) -> float:
    exponent = math.floor(math.log10(max_metres))
    best = 10.0**exponent
    for step in NICE_STEPS:
        if step * 10.0**exponent <= max_metres:
            best = step * 10.0**exponent
    return best


def _draw_scale_bar(image: Image.Image, metres_per_px: float) -> Image.Image:
    width, height = image.size
    length_m = _nice_length(SCALE_BAR_SHARE * width * metres_per_px)
    bar_px = max(1, round(length_m / metres_per_px))
    grow = max(1.0, width / SCALE_REFERENCE_WIDTH_PX)
    font = ImageFont.load_default(size=round(SCALE_FONT_PX * grow))
    pad, margin, bar_h = (
        round(v * grow) for v in (SCALE_BOX_PAD_PX, SCALE_BAR_MARGIN_PX, SCALE_BAR_HEIGHT_PX)
    )
    label = format_length(length_m)
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    text_box = draw.textbbox((0, 0), label, font=font)
    text_w, text_h = text_box[2] - text_box[0], text_box[3] - text_box[1]
    box_w = max(bar_px, text_w) + 2 * pad
    box_h = text_h + bar_h + 3 * pad
    left, top = margin, height - margin - box_h
    draw.rectangle((left, top, left + box_w, top + box_h), fill=(255, 255, 255, SCALE_BOX_ALPHA))
    draw.text((left + pad - text_box[0], top + pad - text_box[1]), label, fill=(20, 20, 20, 255), font=font)
    bar_top = top + 2 * pad + text_h
    draw.rectangle((left + pad, bar_top, left + pad + bar_px, bar_top + bar_h), fill=(20, 20, 20, 255))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def _finish(pixels: npt.NDArray[np.float32], geometry: MapGeometry, path: Path) -> Path:
    image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    if geometry.metres_per_px:
        image = _draw_scale_bar(image, geometry.metres_per_px)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return path


def render_year_map(
    *,
    slum_share: npt.NDArray[np.floating[Any]],
    background: npt.NDArray[np.uint8] | None,
    geometry: MapGeometry,
    path: Path,
) -> Path:
    """Write one year's map: imagery, slum area in translucent colour with an outline, no data hatched."""
    share = _enlarge(slum_share, geometry.upscale)
    shape = (int(share.shape[0]), int(share.shape[1]))
    pixels = _background(_enlarge(background, geometry.upscale) if background is not None else None, shape)
    nodata = np.isnan(share)
    slum = np.nan_to_num(share, nan=0.0) >= SLUM_SHARE_THRESHOLD
    _blend(pixels, slum, SLUM_RGB, SLUM_FILL_ALPHA)
    pixels[_outline(slum, OUTLINE_PX)] = SLUM_RGB
    pixels[nodata] = _hatch(shape)[nodata]
    return _finish(pixels, geometry, path)


@dataclass(frozen=True)
class ChangeCounts:
    """Downsampled pixel counts of the change classes (for the legend and alt text)."""

    new: int
    cleared: int
    stable: int


def render_change_map(
    *,
    first_share: npt.NDArray[np.floating[Any]],
    last_share: npt.NDArray[np.floating[Any]],
    background: npt.NDArray[np.uint8] | None,
    geometry: MapGeometry,
    path: Path,
) -> ChangeCounts:
    """Write the change map: new slum area, cleared area and stable area, first→last year.

    The imagery (of the last year) is shown in light grey so the three colours stand out; blocks
    without data in either year are hatched.
    """
    first = _enlarge(first_share, geometry.upscale)
    last = _enlarge(last_share, geometry.upscale)
    shape = (int(first.shape[0]), int(first.shape[1]))
    base = _background(_enlarge(background, geometry.upscale) if background is not None else None, shape)
    grey = base @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    grey = (1.0 - CHANGE_BACKGROUND_LIGHTEN) * grey + CHANGE_BACKGROUND_LIGHTEN * 255.0
    pixels = np.repeat(grey[..., np.newaxis], 3, axis=-1).astype(np.float32)
    nodata = np.isnan(first) | np.isnan(last)
    was = (np.nan_to_num(first, nan=0.0) >= SLUM_SHARE_THRESHOLD) & ~nodata
    now = (np.nan_to_num(last, nan=0.0) >= SLUM_SHARE_THRESHOLD) & ~nodata
    classes = ((now & ~was, NEW_RGB), (was & ~now, CLEARED_RGB), (was & now, STABLE_RGB))
    for mask, rgb in classes:
        _blend(pixels, mask, rgb, CHANGE_FILL_ALPHA)
    pixels[nodata] = _hatch(shape)[nodata]
    _finish(pixels, geometry, path)
    scale = geometry.upscale**2
    return ChangeCounts(
        new=int((now & ~was).sum()) // scale,
        cleared=int((was & ~now).sum()) // scale,
        stable=int((was & now).sum()) // scale,
    )


def rgb_hex(rgb: Rgb) -> str:
    """Return ``#rrggbb`` for an RGB triple (the page legend uses the map colours)."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)
