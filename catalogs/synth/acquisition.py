"""Per-year acquisition conditions: sun, sensor gain/offset, haze, clouds, noise and swath edges.

Everything is drawn from a generator seeded by ``(seed, year)``, so a year's look is
fixed by the spec and independent of the window being rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon, box

from .noise import block_rng
from .spec import SynthSpec

__all__ = [
    "MAX_SUN_ELEVATION_DEG",
    "MIN_SUN_ELEVATION_DEG",
    "Acquisition",
    "SwathEdge",
    "acquisition",
]

MIN_SUN_ELEVATION_DEG = 45.0
MAX_SUN_ELEVATION_DEG = 72.0
SUN_AZIMUTH_DEG = (105.0, 165.0)
BAND_GAIN = (0.93, 1.07)
COMMON_GAIN = (0.92, 1.08)
BAND_OFFSET = (-0.02, 0.03)
HAZY_P = 0.5
HAZE_HAZY = (0.03, 0.15)
HAZE_CLEAR = (0.0, 0.03)
CLEAR_SKY_P = 0.4
CLOUD_AMOUNT = (0.03, 0.25)
#: Empirical standard deviation of the cloud fBm field (sets the threshold for a target cover).
CLOUD_FIELD_STD = 0.25
NOISE_SIGMA = (0.008, 0.018)
#: Probabilities of 0, 1 or 2 slanted nodata swath edges in a year.
SWATH_EDGE_P = (0.4, 0.35, 0.25)
#: Nodata depth at the shallow and the deep end of a swath edge (fraction of the scene side).
SWATH_SHALLOW = (0.0, 0.03)
SWATH_DEEP = (0.05, 0.16)

Side = Literal["left", "right", "top", "bottom"]
_SIDES: tuple[Side, ...] = ("left", "right", "top", "bottom")


@dataclass(frozen=True, slots=True)
class SwathEdge:
    """A slanted edge of the imaged swath leaving a nodata wedge along one side of the scene.

    Attributes:
        side: Side of the scene the wedge lies on.
        depth_start: Wedge depth at the start of the side (top or left end), fraction of the scene.
        depth_end: Wedge depth at the other end.
    """

    side: Side
    depth_start: float
    depth_end: float

    def outside(
        self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], *, width: int, height: int
    ) -> npt.NDArray[np.bool_]:
        """``(len(rows), len(cols))`` mask of pixels (global indices) in the nodata wedge."""
        r = (rows.astype(np.float64) + 0.5)[:, None]
        c = (cols.astype(np.float64) + 0.5)[None, :]
        if self.side in ("left", "right"):
            depth = (self.depth_start + (self.depth_end - self.depth_start) * r / height) * width
            dist = c if self.side == "left" else width - c
        else:
            depth = (self.depth_start + (self.depth_end - self.depth_start) * c / width) * height
            dist = r if self.side == "top" else height - r
        return np.asarray(dist < depth)

    def wedge(self, *, width: int, height: int) -> Polygon:
        """The nodata wedge as a polygon in pixel coordinates ``(col, row)``."""
        a, b = self.depth_start, self.depth_end
        if self.side == "left":
            return Polygon([(0, 0), (a * width, 0), (b * width, height), (0, height)])
        if self.side == "right":
            return Polygon([(width, 0), (width - a * width, 0), (width - b * width, height), (width, height)])
        if self.side == "top":
            return Polygon([(0, 0), (0, a * height), (width, b * height), (width, 0)])
        return Polygon([(0, height), (0, height - a * height), (width, height - b * height), (width, height)])


@dataclass(frozen=True, slots=True)
class Acquisition:
    """How one year's scene was acquired.

    Attributes:
        year: Acquisition year.
        sun_azimuth_deg: Sun azimuth, degrees clockwise from north.
        sun_elevation_deg: Sun elevation above the horizon, degrees.
        gain: Per-band multiplicative sensor gain (R, G, B, NIR).
        offset: Per-band additive offset.
        haze: Strength of the additive haze veil, 0-1.
        cloud_amount: Target cloud cover fraction (0 = clear sky).
        noise_sigma: Per-pixel noise standard deviation (reflectance units).
        swath: Slanted swath edges (nodata wedges).
    """

    year: int
    sun_azimuth_deg: float
    sun_elevation_deg: float
    gain: tuple[float, float, float, float]
    offset: tuple[float, float, float, float]
    haze: float
    cloud_amount: float
    noise_sigma: float
    swath: tuple[SwathEdge, ...]

    @property
    def sun_direction(self) -> tuple[float, float]:
        """Unit vector towards the sun in the scene frame ``(x east, y south)``."""
        az = math.radians(self.sun_azimuth_deg)
        return (math.sin(az), -math.cos(az))

    @property
    def shadow_slope(self) -> float:
        """Height lost per metre of shadow (``tan(elevation)``)."""
        return math.tan(math.radians(self.sun_elevation_deg))

    @property
    def cloud_threshold(self) -> float:
        """Cloud fBm level above which the sky is cloudy (infinite for a clear sky)."""
        if self.cloud_amount <= 0.0:
            return math.inf
        return CLOUD_FIELD_STD * NormalDist().inv_cdf(1.0 - self.cloud_amount)

    def valid(
        self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], *, width: int, height: int
    ) -> npt.NDArray[np.bool_]:
        """Mask of imaged pixels (inside the raster and the swath) at global ``rows`` x ``cols``."""
        inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
        for edge in self.swath:
            inside &= ~edge.outside(rows, cols, width=width, height=height)
        return inside

    def footprint(self, *, width: int, height: int) -> Polygon:
        """The imaged part of the raster in pixel coordinates ``(col, row)``."""
        poly: Polygon = box(0, 0, width, height)
        for edge in self.swath:
            poly = poly.difference(edge.wedge(width=width, height=height))
        return poly


def acquisition(spec: SynthSpec, year: int) -> Acquisition:
    """The acquisition conditions of ``year`` for the city of ``spec.seed``."""
    rng = block_rng(spec.seed, "acquisition", year)
    azimuth = float(rng.uniform(*SUN_AZIMUTH_DEG))
    elevation = float(rng.uniform(MIN_SUN_ELEVATION_DEG, MAX_SUN_ELEVATION_DEG))
    common = rng.uniform(*COMMON_GAIN)
    gain = tuple(float(common * g) for g in rng.uniform(*BAND_GAIN, size=4))
    offset = tuple(float(o) for o in rng.uniform(*BAND_OFFSET, size=4))
    haze = float(rng.uniform(*(HAZE_HAZY if rng.random() < HAZY_P else HAZE_CLEAR)))
    cloud = 0.0 if rng.random() < CLEAR_SKY_P else float(rng.uniform(*CLOUD_AMOUNT))
    noise = float(rng.uniform(*NOISE_SIGMA))
    n_edges = int(rng.choice(len(SWATH_EDGE_P), p=np.asarray(SWATH_EDGE_P)))
    sides = rng.permutation(len(_SIDES))[:n_edges]
    edges: list[SwathEdge] = []
    for k in sides:
        shallow = float(rng.uniform(*SWATH_SHALLOW))
        deep = float(rng.uniform(*SWATH_DEEP))
        if rng.random() < 0.5:
            shallow, deep = deep, shallow
        edges.append(SwathEdge(side=_SIDES[int(k)], depth_start=shallow, depth_end=deep))
    return Acquisition(
        year=year,
        sun_azimuth_deg=azimuth,
        sun_elevation_deg=elevation,
        gain=(gain[0], gain[1], gain[2], gain[3]),
        offset=(offset[0], offset[1], offset[2], offset[3]),
        haze=haze,
        cloud_amount=cloud,
        noise_sigma=noise,
        swath=tuple(edges),
    )
