"""What synthetic city to generate: :class:`SynthSpec`, its size presets and parsers.

A spec fixes everything that determines the output bytes: the seed, the raster grid
(size, resolution, CRS, origin), the years and the band layout. The city itself is an
infinite, seeded procedural plan (see :mod:`.layout`); the spec cuts a rectangle out of
it, so ``tiny`` is the upper-left corner of ``small`` for the same seed and resolution.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from rasterio.transform import Affine

from slumwatch.catalogs.errors import CatalogError

__all__ = [
    "CALENDAR_END",
    "CALENDAR_START",
    "DEFAULT_YEARS",
    "SIZE_PRESETS",
    "BandLayout",
    "PixelDtype",
    "SynthError",
    "SynthSpec",
    "parse_size",
    "parse_years",
]

BandLayout = Literal["rgb", "rgbn"]
PixelDtype = Literal["uint8", "uint16"]

#: Named sizes (width, height) in pixels.
SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "tiny": (1024, 1024),
    "small": (4096, 4096),
    "city": (20_000, 20_000),
    "metro": (40_000, 40_000),
}
#: Default acquisition years (one scene each).
DEFAULT_YEARS: tuple[int, ...] = tuple(range(2014, 2025))
#: Intrinsic calendar of the city plan: slum growth and build years are defined on it.
CALENDAR_START = 1980
CALENDAR_END = 2050

DEFAULT_SEED = 7
DEFAULT_RESOLUTION_M = 0.6
#: Accepted pixel sizes. The look of the city is tuned for 0.5-0.6 m; coarser grids still work.
MIN_RESOLUTION_M = 0.3
MAX_RESOLUTION_M = 2.0
#: WGS 84 / UTM zone 43N (Mumbai).
DEFAULT_EPSG = 32643
DEFAULT_ORIGIN_EASTING = 270_000.0
DEFAULT_ORIGIN_NORTHING = 2_110_000.0
MIN_SIZE_PX = 16
MAX_SIZE_PX = 200_000
DEFAULT_WINDOW_PX = 1024
MIN_WINDOW_PX = 64
MAX_WINDOW_PX = 8192
MAX_SEED = 2**63 - 1
UTM_NORTH_EPSG = range(32601, 32661)
UTM_SOUTH_EPSG = range(32701, 32761)

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_BAND_NAMES: dict[str, tuple[str, ...]] = {
    "rgb": ("red", "green", "blue"),
    "rgbn": ("red", "green", "blue", "nir"),
}


class SynthError(CatalogError, ValueError):
    """A synthetic city was asked for with impossible parameters (size, resolution, years, ...)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SynthSpec:
    """Parameters of one synthetic multi-year city.

    Attributes:
        name: Short name used in ids (``synth-<name>-s<seed>``); lower case, digits, ``-``, ``_``.
        width: Raster width in pixels.
        height: Raster height in pixels.
        seed: Seed of the city plan and of every per-year effect (non-negative).
        resolution: Pixel size in metres (0.3-2.0; the look is tuned for 0.5-0.6).
        years: Acquisition years, strictly increasing, within the city calendar.
        bands: ``"rgb"`` or ``"rgbn"`` (adds a near-infrared band).
        dtype: ``"uint8"`` or ``"uint16"`` (12-bit-like values scaled by 16 plus noise).
        epsg: UTM EPSG code of the grid (326xx or 327xx).
        origin_easting: Easting of the upper-left corner, metres.
        origin_northing: Northing of the upper-left corner, metres.
        window_size: Edge of the square windows the writer renders one at a time, pixels.
    """

    name: str = "tiny"
    width: int = SIZE_PRESETS["tiny"][0]
    height: int = SIZE_PRESETS["tiny"][1]
    seed: int = DEFAULT_SEED
    resolution: float = DEFAULT_RESOLUTION_M
    years: tuple[int, ...] = field(default=DEFAULT_YEARS)
    bands: BandLayout = "rgb"
    dtype: PixelDtype = "uint8"
    epsg: int = DEFAULT_EPSG
    origin_easting: float = DEFAULT_ORIGIN_EASTING
    origin_northing: float = DEFAULT_ORIGIN_NORTHING
    window_size: int = DEFAULT_WINDOW_PX

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise SynthError(f"name must match {_NAME_RE.pattern!r}, got {self.name!r}")
        for label, value in (("width", self.width), ("height", self.height)):
            if not isinstance(value, int) or not MIN_SIZE_PX <= value <= MAX_SIZE_PX:
                raise SynthError(
                    f"{label} must be an integer in [{MIN_SIZE_PX}, {MAX_SIZE_PX}] px, got {value!r}"
                )
        if not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise SynthError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed!r}")
        if not (
            isinstance(self.resolution, int | float)
            and math.isfinite(self.resolution)
            and MIN_RESOLUTION_M <= self.resolution <= MAX_RESOLUTION_M
        ):
            raise SynthError(
                f"resolution must be in [{MIN_RESOLUTION_M}, {MAX_RESOLUTION_M}] m, got {self.resolution!r}"
            )
        if isinstance(self.years, list):
            object.__setattr__(self, "years", tuple(self.years))
        _check_years(self.years)
        if self.bands not in get_args(BandLayout):
            raise SynthError(f"bands must be one of {get_args(BandLayout)}, got {self.bands!r}")
        if self.dtype not in get_args(PixelDtype):
            raise SynthError(f"dtype must be one of {get_args(PixelDtype)}, got {self.dtype!r}")
        if self.epsg not in UTM_NORTH_EPSG and self.epsg not in UTM_SOUTH_EPSG:
            raise SynthError(f"epsg must be a WGS 84 UTM code (326xx or 327xx), got {self.epsg!r}")
        if not (math.isfinite(self.origin_easting) and math.isfinite(self.origin_northing)):
            raise SynthError("origin_easting and origin_northing must be finite")
        if not isinstance(self.window_size, int) or not MIN_WINDOW_PX <= self.window_size <= MAX_WINDOW_PX:
            raise SynthError(
                f"window_size must be an integer in [{MIN_WINDOW_PX}, {MAX_WINDOW_PX}] px, "
                f"got {self.window_size!r}"
            )

    @classmethod
    def from_size(cls, size: str, **overrides: object) -> SynthSpec:
        """A spec for a preset name (``tiny``, ``small``, ``city``, ``metro``) or ``WIDTHxHEIGHT``.

        Args:
            size: Preset name or explicit ``WIDTHxHEIGHT`` in pixels, e.g. ``"1000x777"``.
            **overrides: Any other :class:`SynthSpec` field (``seed``, ``years``, ``bands``, ...).

        Raises:
            SynthError: Unknown preset, malformed size, or invalid overrides.
        """
        name, width, height = parse_size(size)
        kwargs: dict[str, object] = {"name": name, "width": width, "height": height}
        kwargs.update(overrides)
        try:
            return cls(**kwargs)  # type: ignore[arg-type]
        except TypeError as exc:  # unknown keyword
            raise SynthError(str(exc)) from exc

    @property
    def crs(self) -> str:
        """The grid's CRS as ``"EPSG:<code>"``."""
        return f"EPSG:{self.epsg}"

    @property
    def transform(self) -> Affine:
        """North-up affine transform of the raster grid."""
        return Affine(self.resolution, 0.0, self.origin_easting, 0.0, -self.resolution, self.origin_northing)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units."""
        right = self.origin_easting + self.width * self.resolution
        bottom = self.origin_northing - self.height * self.resolution
        return (self.origin_easting, bottom, right, self.origin_northing)

    @property
    def extent_m(self) -> tuple[float, float]:
        """``(width, height)`` of the scene in metres."""
        return (self.width * self.resolution, self.height * self.resolution)

    @property
    def band_names(self) -> tuple[str, ...]:
        """eo:bands common names in file order."""
        return _BAND_NAMES[self.bands]

    @property
    def count(self) -> int:
        """Number of image bands."""
        return len(self.band_names)

    @property
    def collection_id(self) -> str:
        """STAC collection id, ``synth-<name>-s<seed>``."""
        return f"synth-{self.name}-s{self.seed}"

    def item_id(self, year: int) -> str:
        """STAC item id of one year's scene."""
        return f"{self.collection_id}-{year}"


def _check_years(years: object) -> None:
    if not isinstance(years, tuple) or not years:
        raise SynthError(f"years must be a non-empty tuple of integers, got {years!r}")
    for year in years:
        if not isinstance(year, int) or isinstance(year, bool):
            raise SynthError(f"years must be integers, got {year!r}")
        if not CALENDAR_START < year <= CALENDAR_END:
            raise SynthError(
                f"year {year} is outside the supported range ({CALENDAR_START + 1}-{CALENDAR_END})"
            )
    if any(b <= a for a, b in itertools.pairwise(years)):
        raise SynthError(f"years must be strictly increasing without duplicates, got {years!r}")


def parse_size(size: str) -> tuple[str, int, int]:
    """Parse a preset name or ``WIDTHxHEIGHT`` into ``(name, width, height)``.

    Raises:
        SynthError: Unknown preset or malformed size.
    """
    key = size.strip().lower()
    if key in SIZE_PRESETS:
        width, height = SIZE_PRESETS[key]
        return key, width, height
    match = _SIZE_RE.match(key)
    if match is None:
        presets = ", ".join(SIZE_PRESETS)
        raise SynthError(f"unknown size {size!r}: use one of {presets} or WIDTHxHEIGHT (e.g. 1000x777)")
    width, height = int(match.group(1)), int(match.group(2))
    return f"{width}x{height}", width, height


def parse_years(text: str) -> tuple[int, ...]:
    """Parse ``"2014-2024"``, ``"2014,2016,2020"`` or a mix (``"2014-2016,2020"``) into sorted years.

    Raises:
        SynthError: Malformed text, a reversed range, or years outside the calendar.
    """
    years: set[int] = set()
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise SynthError(f"malformed years {text!r}: use e.g. 2014-2024 or 2014,2016,2020")
    for part in parts:
        match = re.fullmatch(r"(\d{4})(?:\s*-\s*(\d{4}))?", part)
        if match is None:
            raise SynthError(f"malformed years {text!r}: {part!r} is not YEAR or YEAR-YEAR")
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) else start
        if stop < start:
            raise SynthError(f"malformed years {text!r}: range {part!r} runs backwards")
        years.update(range(start, stop + 1))
    result = tuple(sorted(years))
    _check_years(result)
    return result
