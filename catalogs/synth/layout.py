"""Deterministic, block-local city plan: roads, blocks, formal buildings, slums and their growth.

The plan is an infinite street grid in a *layout frame* ``(u, v)`` that is rotated and
shifted against the *scene frame* ``(x, y)`` (metres from the raster's upper-left corner,
``x`` east, ``y`` south). Grid lines sit near multiples of :data:`BLOCK_PITCH_M` with a
jitter hashed from ``(seed, line index)``; the block between lines ``i, i+1`` and
``j, j+1`` is generated from a generator seeded by ``(seed, i, j)`` alone. Any window can
therefore be rendered by generating only the blocks that touch it, and the same seed
always gives the same city whatever the scene size.

Block kinds: formal residential, commercial, park, open land (some developed over the
years) and slum. A slum grows as a star-shaped polygon around a seed point, scaled by a
growth fraction ``f(year)`` (fast in :data:`FAST_GROWTH_YEARS`) and clipped to its block;
its buildings appear in the first year the polygon contains their whole footprint. One
slum in each :data:`CLEARING_GROUP` x :data:`CLEARING_GROUP` group of blocks (if the group
has at least two) is cleared in a hashed year; its buildings are removed that year and the
land becomes a construction site, sometimes redeveloped with formal buildings.

Years follow the convention: a building exists in ``year`` when
``year_built <= year < year_removed``; a slum exists when ``emerge_year <= year < clear_year``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import LineString, Polygon, box
from shapely.geometry.base import BaseGeometry

from .noise import block_rng, hash_unit
from .palette import CAR_COLOURS, TREE_COLOURS, Ground, sample_roof_colours
from .shapes import MAX_ARM, MIN_ARM, SHAPE_TYPES, footprints
from .spec import CALENDAR_END, CALENDAR_START

__all__ = [
    "FAST_GROWTH_YEARS",
    "NEVER",
    "Block",
    "BlockKind",
    "Buildings",
    "Cars",
    "CityFrame",
    "CityLayout",
    "GroundPatch",
    "Slum",
    "Trees",
    "growth_fraction",
]

# --- street grid -------------------------------------------------------------------------------
BLOCK_PITCH_M = 130.0
#: Grid-line jitter as a fraction of the pitch.
LINE_JITTER = 0.16
#: Every n-th grid line is a wide arterial road.
ARTERIAL_EVERY = 4
ARTERIAL_HALF_WIDTH_M = 9.0
STREET_HALF_WIDTH_M = (3.0, 5.0)
MAX_CITY_ROTATION_DEG = 20.0
DASH_LENGTH_M = 3.0
DASH_PERIOD_M = 9.0
DASH_WIDTH_M = 0.7
#: How far a block's contents reach beyond its kerbs (markings on the widest road's centre line).
BLOCK_REACH_M = ARTERIAL_HALF_WIDTH_M + 1.0
#: Sidewalk band inside formal blocks (min, max) metres.
SIDEWALK_M = (1.5, 2.5)

# --- block kinds ---------------------------------------------------------------------------------


class BlockKind(IntEnum):
    """What a block holds."""

    FORMAL = 0
    COMMERCIAL = 1
    PARK = 2
    SLUM = 3
    OPEN = 4


KIND_WEIGHTS: dict[BlockKind, float] = {
    BlockKind.FORMAL: 0.38,
    BlockKind.COMMERCIAL: 0.12,
    BlockKind.PARK: 0.08,
    BlockKind.SLUM: 0.31,
    BlockKind.OPEN: 0.11,
}

# --- formal buildings ----------------------------------------------------------------------------
FORMAL_SHAPE_WEIGHTS: tuple[float, ...] = (0.45, 0.12, 0.13, 0.13, 0.17)  # R, U, T, I, L
FORMAL_ROW_DEPTH_M = {BlockKind.FORMAL: (34.0, 50.0), BlockKind.COMMERCIAL: (48.0, 75.0)}
FORMAL_PLOT_WIDTH_M = {BlockKind.FORMAL: (22.0, 38.0), BlockKind.COMMERCIAL: (36.0, 62.0)}
FORMAL_SETBACK_M = {BlockKind.FORMAL: (2.5, 6.0), BlockKind.COMMERCIAL: (4.0, 9.0)}
FORMAL_HEIGHT_M = {BlockKind.FORMAL: (6.0, 21.0), BlockKind.COMMERCIAL: (9.0, 30.0)}
MIN_FORMAL_SIDE_M = 8.0
#: A last plot narrower than this fraction of the minimum plot width is merged into its neighbour.
MIN_LAST_PLOT_FRACTION = 0.6
#: Probability of flipping a shape (its open side) or a roof within its row.
FLIP_P = 0.5
FORMAL_ANGLE_JITTER_RAD = math.radians(1.5)
FORMAL_PITCHED_P = 0.1
#: Pre-existing formal buildings were built in this range.
OLD_BUILD_YEARS = (1980, 2012)
#: Probability that a formal plot is built during the monitoring period instead.
NEW_FORMAL_P = 0.1
NEW_FORMAL_YEARS = (2015, 2024)
CONSTRUCTION_LEAD_YEARS = 1
OPEN_DEVELOP_P = 0.45
OPEN_DEVELOP_YEARS = (2016, 2024)
REDEVELOP_P = 0.6
REDEVELOP_DELAY_YEARS = 2
LAWN_P = {BlockKind.FORMAL: 0.55, BlockKind.COMMERCIAL: 0.2}
PARKING_P = {BlockKind.FORMAL: 0.1, BlockKind.COMMERCIAL: 0.55}

# --- slums ---------------------------------------------------------------------------------------
INFORMAL_SHAPE_WEIGHTS: tuple[float, ...] = (0.50, 0.10, 0.12, 0.12, 0.16)  # R, U, T, I, L
INFORMAL_SIDE_M = (3.0, 8.0)
INFORMAL_HEIGHT_M = (2.8, 5.0)
INFORMAL_PITCHED_P = 0.7
INFORMAL_ANGLE_JITTER_DEG = 3.0
ROW_ANGLE_JITTER_DEG = 2.5
ROW_START_JITTER_M = 3.0
ROOF_ACROSS_JITTER_M = 0.2
#: Gap to the next roof in a row: (probability, min, max) metres; negative = overlap.
ROOF_GAPS = ((0.72, -0.5, 0.1), (0.2, 0.3, 0.8), (0.08, 1.0, 1.8))
#: Gap to the next row: probability of an alley, alley width, otherwise back-to-back.
ALLEY_P = 0.25
ALLEY_WIDTH_M = (0.8, 1.8)
BACK_TO_BACK_M = (-0.5, 0.2)
#: Depth of a roof relative to its row (roofs are pushed to a random side of the row).
ROOF_DEPTH_FRACTION = (0.8, 1.0)
LANES_PER_SLUM = (1, 3)
LANE_WIDTH_M = (1.5, 2.6)
LANE_WOBBLE_M = 1.0
SLUM_SETBACK_M = (0.5, 1.5)
STAR_VERTICES = 96
STAR_HARMONICS = (2, 3, 4, 5)
STAR_MAX_AMPLITUDE = 0.1
STAR_RADIUS_MARGIN = 1.1
SLUM_CENTRE_JITTER = 0.25
#: Growth fraction at emergence, per-year increment, and the fast period.
F_EMERGE = 0.12
BASE_INCREMENT = 0.03
FAST_INCREMENT = 0.11
FAST_GROWTH_YEARS: tuple[int, ...] = (2020, 2021)
SLUM_SPEED = (0.6, 1.3)
PRE_EXISTING_P = 0.7
PRE_EXISTING_YEARS = (1998, 2012)
#: Emergence years of new slums and their relative weights (more in the fast period).
NEW_SLUM_YEARS: tuple[int, ...] = (2015, 2016, 2017, 2018, 2019, 2020, 2021, 2022)
NEW_SLUM_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 1.0)
CLEARING_GROUP = 4
#: Years in which slums are cleared (none during the fast-growth years).
CLEAR_YEARS: tuple[int, ...] = (2016, 2017, 2018, 2019, 2022, 2023)
MIN_AGE_BEFORE_CLEAR = 3

# --- trees and cars ------------------------------------------------------------------------------
TREE_RADIUS_M = (1.5, 5.0)
BUSH_RADIUS_M = (0.9, 2.0)
TREE_HEIGHT_PER_RADIUS = (1.6, 2.4)
TREE_QUAD_SEGS = 3
STREET_TREE_P = 0.55
STREET_TREE_RADIUS_M = (2.0, 3.5)
STREET_TREE_VARIATION = (0.85, 1.15)
#: Street trees stand this many radii inside the sidewalk edge.
STREET_TREE_INSET = 0.6
#: Fraction of a canopy radius that may overhang a path or a roof.
TREE_OVERHANG = 0.3
TREE_BRIGHTNESS = (0.9, 1.1)
STREET_TREE_SPACING_M = (9.0, 14.0)
PLOT_TREES = {BlockKind.FORMAL: (0, 5), BlockKind.COMMERCIAL: (0, 2)}
PARK_TREES = (25, 70)
OPEN_BUSHES = (4, 16)
SLUM_TREES = (2, 8)
PARK_PATH_WIDTH_M = 3.0
DIAGONAL_PATHS_P = 0.5
#: Crossing park paths keep this fraction of the park away from its edges.
PARK_PATH_EDGE_FRACTION = 0.3
CAR_SIZE_M = (4.3, 1.8)
CAR_KERB_OFFSET_M = 1.4
CAR_MEAN_GAP_M = {
    BlockKind.FORMAL: 14.0,
    BlockKind.COMMERCIAL: 9.0,
    BlockKind.PARK: 30.0,
    BlockKind.SLUM: 40.0,
    BlockKind.OPEN: 60.0,
}
CAR_HEIGHT_M = 1.5

# --- ids and misc --------------------------------------------------------------------------------
#: Sentinel year meaning "never" (a building that is never removed).
NEVER = 9999
_ID_OFFSET = 1 << 20
_ID_BLOCK_BITS = 21
_ID_LOCAL_BITS = 16
DEFAULT_BLOCK_CACHE = 2048


def growth_fraction(year: int, *, emerge_year: int, speed: float) -> float:
    """The slum's growth fraction ``f(year)`` in ``[0, 1]`` (0 before it emerges).

    ``f`` starts at :data:`F_EMERGE` and increases by ``speed`` times :data:`BASE_INCREMENT`
    per year, or :data:`FAST_INCREMENT` in :data:`FAST_GROWTH_YEARS`, capped at 1.
    """
    if year < emerge_year:
        return 0.0
    n_fast = sum(1 for y in FAST_GROWTH_YEARS if emerge_year < y <= year)
    n_base = (year - emerge_year) - n_fast
    return min(1.0, F_EMERGE + speed * (n_base * BASE_INCREMENT + n_fast * FAST_INCREMENT))


@dataclass(frozen=True, slots=True)
class CityFrame:
    """Rotation and offset between the scene frame ``(x, y)`` and the layout frame ``(u, v)``.

    ``(u, v) = R(-angle) (x, y) + offset``; both frames are in metres.
    """

    angle: float
    offset_u: float
    offset_v: float

    @classmethod
    def from_seed(cls, seed: int) -> CityFrame:
        """The frame of the city with ``seed``."""
        angle = math.radians((2.0 * hash_unit(seed, "rotation") - 1.0) * MAX_CITY_ROTATION_DEG)
        return cls(
            angle=angle,
            offset_u=hash_unit(seed, "offset-u") * BLOCK_PITCH_M,
            offset_v=hash_unit(seed, "offset-v") * BLOCK_PITCH_M,
        )

    def to_layout(self, xy: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Scene ``(n, 2)`` points to layout points."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        u = c * pts[:, 0] + s * pts[:, 1] + self.offset_u
        v = -s * pts[:, 0] + c * pts[:, 1] + self.offset_v
        return np.stack([u, v], axis=1)

    def to_scene(self, uv: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Layout ``(n, 2)`` points to scene points."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        pts = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        du = pts[:, 0] - self.offset_u
        dv = pts[:, 1] - self.offset_v
        return np.stack([c * du - s * dv, s * du + c * dv], axis=1)

    def geoms_to_scene(self, geoms: npt.ArrayLike) -> npt.NDArray[np.object_]:
        """Layout-frame geometries to the scene frame (vectorised)."""
        arr = np.asarray(geoms, dtype=object)
        return shapely.transform(arr, self.to_scene)

    def geom_to_scene(self, geom: BaseGeometry) -> BaseGeometry:
        """One layout-frame geometry to the scene frame."""
        return shapely.transform(geom, self.to_scene)


@dataclass(frozen=True, slots=True, eq=False)
class GroundPatch:
    """A ground-cover polygon (scene frame) that exists in ``year_from <= year < year_to``."""

    geometry: BaseGeometry
    ground: Ground
    year_from: int = CALENDAR_START
    year_to: int = NEVER

    def active(self, year: int) -> bool:
        """Whether the patch is visible in ``year``."""
        return self.year_from <= year < self.year_to


@dataclass(frozen=True, slots=True, eq=False)
class Buildings:
    """Building footprints of one block as parallel arrays (scene frame).

    Attributes:
        geometry: Footprint polygons.
        building_id: Globally unique ids.
        shape_type: ``R``/``U``/``T``/``I``/``L``.
        year_built: First year the building exists.
        year_removed: First year it no longer exists (:data:`NEVER` if never removed).
        informal: Whether the building is part of a slum.
        height: Roof height above ground, metres.
        roof: ``(n, 4)`` RGBN roof colour.
        pitched: Whether the roof has a ridge (two differently lit halves).
        angle: Orientation of the long axis in the scene frame, radians.
        centre: ``(n, 2)`` centre of the shape's box in the scene frame.
        slum_id: Id of the slum an informal building belongs to, -1 otherwise.
    """

    geometry: npt.NDArray[np.object_]
    building_id: npt.NDArray[np.int64]
    shape_type: npt.NDArray[np.str_]
    year_built: npt.NDArray[np.int32]
    year_removed: npt.NDArray[np.int32]
    informal: npt.NDArray[np.bool_]
    height: npt.NDArray[np.float32]
    roof: npt.NDArray[np.float32]
    pitched: npt.NDArray[np.bool_]
    angle: npt.NDArray[np.float32]
    centre: npt.NDArray[np.float64]
    slum_id: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.building_id.size)

    def exists(self, year: int) -> npt.NDArray[np.bool_]:
        """Boolean mask of buildings standing in ``year``."""
        return (self.year_built <= year) & (year < self.year_removed)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> Buildings:
        """The subset at ``index`` (integer or boolean)."""
        return Buildings(**{name: getattr(self, name)[index] for name in _BUILDING_FIELDS})

    @staticmethod
    def concat(parts: list[Buildings]) -> Buildings:
        """Concatenate several sets in order."""
        if not parts:
            return _empty_buildings()
        return Buildings(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in _BUILDING_FIELDS}
        )


_BUILDING_FIELDS = (
    "geometry",
    "building_id",
    "shape_type",
    "year_built",
    "year_removed",
    "informal",
    "height",
    "roof",
    "pitched",
    "angle",
    "centre",
    "slum_id",
)


def _empty_buildings() -> Buildings:
    return Buildings(
        geometry=np.empty(0, dtype=object),
        building_id=np.empty(0, dtype=np.int64),
        shape_type=np.empty(0, dtype="<U1"),
        year_built=np.empty(0, dtype=np.int32),
        year_removed=np.empty(0, dtype=np.int32),
        informal=np.empty(0, dtype=bool),
        height=np.empty(0, dtype=np.float32),
        roof=np.empty((0, 4), dtype=np.float32),
        pitched=np.empty(0, dtype=bool),
        angle=np.empty(0, dtype=np.float32),
        centre=np.empty((0, 2), dtype=np.float64),
        slum_id=np.empty(0, dtype=np.int64),
    )


@dataclass(frozen=True, slots=True, eq=False)
class Trees:
    """Tree canopies as parallel arrays (scene frame); trees are static over the years."""

    centre: npt.NDArray[np.float64]
    radius: npt.NDArray[np.float32]
    height: npt.NDArray[np.float32]
    colour: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.radius.size)

    @property
    def geometry(self) -> npt.NDArray[np.object_]:
        """Canopy polygons."""
        return shapely.buffer(
            shapely.points(self.centre), self.radius.astype(np.float64), quad_segs=TREE_QUAD_SEGS
        )

    @staticmethod
    def concat(parts: list[Trees]) -> Trees:
        """Concatenate several sets in order."""
        if not parts:
            return _empty_trees()
        return Trees(
            centre=np.concatenate([p.centre for p in parts]),
            radius=np.concatenate([p.radius for p in parts]),
            height=np.concatenate([p.height for p in parts]),
            colour=np.concatenate([p.colour for p in parts]),
        )


def _empty_trees() -> Trees:
    return Trees(
        centre=np.empty((0, 2)),
        radius=np.empty(0, dtype=np.float32),
        height=np.empty(0, dtype=np.float32),
        colour=np.empty((0, 4), dtype=np.float32),
    )


@dataclass(frozen=True, slots=True, eq=False)
class Cars:
    """Parked cars of one year (scene frame)."""

    geometry: npt.NDArray[np.object_]
    colour: npt.NDArray[np.float32]

    @staticmethod
    def concat(parts: list[Cars]) -> Cars:
        """Concatenate several sets in order."""
        if not parts:
            return Cars(geometry=np.empty(0, dtype=object), colour=np.empty((0, 4), dtype=np.float32))
        return Cars(
            geometry=np.concatenate([p.geometry for p in parts]),
            colour=np.concatenate([p.colour for p in parts]),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Slum:
    """One informal settlement and its growth schedule.

    Attributes:
        slum_id: Unique id (that of its block).
        emerge_year: First year the slum exists.
        clear_year: Year it is cleared (no longer exists), or ``None``.
        speed: Growth speed multiplier.
        centre: Seed point in the layout frame.
        radii: Radius of the full-grown star polygon at :data:`STAR_VERTICES` angles.
        buildable: Area the slum may cover (its block minus a setback), layout frame.
        frame: Layout-to-scene frame.
    """

    slum_id: int
    emerge_year: int
    clear_year: int | None
    speed: float
    centre: tuple[float, float]
    radii: npt.NDArray[np.float64]
    buildable: Polygon
    frame: CityFrame
    _cache: dict[int, Polygon | None] = field(default_factory=dict, repr=False)

    @property
    def last_year(self) -> int:
        """Last calendar year the slum exists."""
        return min(CALENDAR_END, (self.clear_year - 1) if self.clear_year is not None else CALENDAR_END)

    def fraction(self, year: int) -> float:
        """Growth fraction in ``year`` (0 when the slum does not exist)."""
        if year < self.emerge_year or year > self.last_year:
            return 0.0
        return growth_fraction(year, emerge_year=self.emerge_year, speed=self.speed)

    def layout_polygon_at(self, fraction: float) -> Polygon:
        """Star polygon scaled by ``fraction`` and clipped to the buildable area (layout frame)."""
        theta = np.linspace(0.0, 2.0 * math.pi, STAR_VERTICES, endpoint=False)
        r = self.radii * fraction
        pts = np.stack([self.centre[0] + r * np.cos(theta), self.centre[1] + r * np.sin(theta)], axis=1)
        clipped = Polygon(pts).intersection(self.buildable)
        return _largest_polygon(clipped)

    def polygon(self, year: int) -> Polygon | None:
        """The slum's outline in ``year`` (scene frame), or ``None`` when it does not exist."""
        if year not in self._cache:
            f = self.fraction(year)
            poly: Polygon | None = None
            if f > 0.0:
                scene = self.frame.geom_to_scene(self.layout_polygon_at(f))
                poly = scene if isinstance(scene, Polygon) and not scene.is_empty else None
            self._cache[year] = poly
        return self._cache[year]

    def cleared_area(self) -> Polygon | None:
        """What the slum covered just before it was cleared (scene frame), or ``None``."""
        if self.clear_year is None:
            return None
        return self.polygon(self.clear_year - 1)


@dataclass(frozen=True, slots=True, eq=False)
class Block:
    """Everything in one city block.

    Attributes:
        i, j: Block indices (between grid lines ``i, i+1`` along ``u`` and ``j, j+1`` along ``v``).
        kind: What the block holds.
        polygon: The block (inside the kerbs), scene frame.
        base: Ground class of the whole block.
        patches: Ground patches painted over the base, in order.
        buildings: Every building that ever stands in the block.
        trees: Tree canopies.
        slum: The block's slum, if any.
        kerbs: Road-side edges (layout frame) along which cars park, as ``(u0, v0, u1, v1)``.
        seed: City seed (for per-year cars).
        frame: Layout-to-scene frame.
    """

    i: int
    j: int
    kind: BlockKind
    polygon: Polygon
    base: Ground
    patches: tuple[GroundPatch, ...]
    buildings: Buildings
    trees: Trees
    slum: Slum | None
    kerbs: tuple[tuple[float, float, float, float], ...]
    seed: int
    frame: CityFrame

    @property
    def block_id(self) -> int:
        """Unique id of the block (also the id of its slum)."""
        return block_id(self.i, self.j)

    def ground_shapes(self, year: int) -> list[tuple[BaseGeometry, int]]:
        """``(geometry, Ground)`` pairs to paint for ``year``, in painting order (after the bases)."""
        shapes: list[tuple[BaseGeometry, int]] = [
            (p.geometry, int(p.ground)) for p in self.patches if p.active(year)
        ]
        if self.slum is not None:
            poly = self.slum.polygon(year)
            if poly is not None:
                shapes.insert(0, (poly, int(Ground.SLUM_GROUND)))
            cleared = self.slum.cleared_area()
            if cleared is not None and self.slum.clear_year is not None and year >= self.slum.clear_year:
                shapes.insert(0, (cleared, int(Ground.CONSTRUCTION)))
        return shapes

    def cars(self, year: int) -> Cars:
        """Cars parked along the block's kerbs in ``year`` (different every year)."""
        rng = block_rng(self.seed, "cars", self.i, self.j, year)
        mean_gap = CAR_MEAN_GAP_M[self.kind]
        length, width = CAR_SIZE_M
        cu: list[npt.NDArray[np.float64]] = []
        cv: list[npt.NDArray[np.float64]] = []
        ang: list[npt.NDArray[np.float64]] = []
        for u0, v0, u1, v1 in self.kerbs:
            edge = math.hypot(u1 - u0, v1 - v0)
            tu, tv = (u1 - u0) / edge, (v1 - v0) / edge
            nu, nv = -tv, tu  # outward normal (kerbs run around the block with the block on the left)
            n_max = int(edge / length) + 1
            steps = rng.exponential(mean_gap, size=n_max) + np.concatenate(
                [[0.0], np.full(n_max - 1, length)]
            )
            pos = np.cumsum(steps)
            pos = pos[pos + length < edge]
            cu.append(u0 + tu * (pos + length / 2) + nu * (CAR_KERB_OFFSET_M + width / 2))
            cv.append(v0 + tv * (pos + length / 2) + nv * (CAR_KERB_OFFSET_M + width / 2))
            ang.append(np.full(pos.size, math.atan2(tv, tu)))
        cu_all, cv_all, ang_all = np.concatenate(cu), np.concatenate(cv), np.concatenate(ang)
        n = cu_all.size
        colours = np.asarray(CAR_COLOURS, dtype=np.float32)[rng.integers(0, len(CAR_COLOURS), size=n)]
        if n == 0:
            return Cars(geometry=np.empty(0, dtype=object), colour=colours.reshape(-1, 4))
        geoms = footprints(
            np.full(n, "R"), cx=cu_all, cy=cv_all, length=length, width=width, angle=ang_all, arm=MIN_ARM
        )
        return Cars(geometry=self.frame.geoms_to_scene(geoms), colour=colours.reshape(-1, 4))


def block_id(i: int, j: int) -> int:
    """Unique non-negative id of block ``(i, j)``."""
    return ((i + _ID_OFFSET) << _ID_BLOCK_BITS) | (j + _ID_OFFSET)


def _pick(rng: np.random.Generator, weights: tuple[float, ...]) -> int:
    """Index drawn with probabilities proportional to ``weights`` (cheaper than ``rng.choice``)."""
    x = rng.random() * sum(weights)
    acc = 0.0
    for k, w in enumerate(weights):
        acc += w
        if x < acc:
            return k
    return len(weights) - 1


def _largest_polygon(geom: BaseGeometry) -> Polygon:
    if isinstance(geom, Polygon):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]
    if not polys:
        return Polygon()
    return max(polys, key=lambda p: p.area)


class CityLayout:
    """The city plan of one seed: grid lines, block kinds and (cached) block contents.

    Args:
        seed: City seed.
        cache_size: How many generated blocks to keep (least recently used are dropped).
    """

    def __init__(self, seed: int, *, cache_size: int = DEFAULT_BLOCK_CACHE) -> None:
        self.seed = seed
        self.frame = CityFrame.from_seed(seed)
        self._cache: OrderedDict[tuple[int, int], Block] = OrderedDict()
        self._cache_size = cache_size

    # -- grid ---------------------------------------------------------------------------------
    def line(self, axis: str, index: int) -> tuple[float, float]:
        """``(position, half_width)`` of grid line ``index`` along ``axis`` (``"u"`` or ``"v"``)."""
        jitter = (2.0 * hash_unit(self.seed, "line", axis, index) - 1.0) * LINE_JITTER * BLOCK_PITCH_M
        if index % ARTERIAL_EVERY == 0:
            half = ARTERIAL_HALF_WIDTH_M
        else:
            lo, hi = STREET_HALF_WIDTH_M
            half = lo + (hi - lo) * hash_unit(self.seed, "width", axis, index)
        return index * BLOCK_PITCH_M + jitter, half

    def block_rect(self, i: int, j: int) -> tuple[float, float, float, float]:
        """``(u0, v0, u1, v1)`` of block ``(i, j)`` inside the kerbs, layout frame."""
        u0, hu0 = self.line("u", i)
        u1, hu1 = self.line("u", i + 1)
        v0, hv0 = self.line("v", j)
        v1, hv1 = self.line("v", j + 1)
        return (u0 + hu0, v0 + hv0, u1 - hu1, v1 - hv1)

    def kind(self, i: int, j: int) -> BlockKind:
        """Kind of block ``(i, j)`` (a pure hash of seed and indices)."""
        x = hash_unit(self.seed, "kind", i, j)
        total = sum(KIND_WEIGHTS.values())
        acc = 0.0
        for kind, weight in KIND_WEIGHTS.items():
            acc += weight / total
            if x < acc:
                return kind
        return BlockKind.OPEN

    def block_indices(self, x0: float, y0: float, x1: float, y1: float) -> list[tuple[int, int]]:
        """Blocks whose contents may reach into the scene-frame rectangle, sorted by ``(j, i)``.

        A block's contents reach :data:`BLOCK_REACH_M` beyond its kerbs (cars parked on the
        road, centre-line markings), so blocks are matched with that margin: every block that
        can paint a pixel of the rectangle is returned, whichever window asks.
        """
        corners = self.frame.to_layout([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        region = Polygon(corners)
        margin = LINE_JITTER * BLOCK_PITCH_M + BLOCK_REACH_M
        i_lo = math.floor((corners[:, 0].min() - margin) / BLOCK_PITCH_M) - 1
        i_hi = math.ceil((corners[:, 0].max() + margin) / BLOCK_PITCH_M) + 1
        j_lo = math.floor((corners[:, 1].min() - margin) / BLOCK_PITCH_M) - 1
        j_hi = math.ceil((corners[:, 1].max() + margin) / BLOCK_PITCH_M) + 1
        reach = BLOCK_REACH_M
        out: list[tuple[int, int]] = []
        for j in range(j_lo, j_hi + 1):
            for i in range(i_lo, i_hi + 1):
                u0, v0, u1, v1 = self.block_rect(i, j)
                if (
                    u1 > u0
                    and v1 > v0
                    and region.intersects(box(u0 - reach, v0 - reach, u1 + reach, v1 + reach))
                ):
                    out.append((i, j))
        return out

    def blocks_in(self, x0: float, y0: float, x1: float, y1: float) -> list[Block]:
        """Blocks meeting the scene-frame rectangle (cached), sorted by ``(j, i)``."""
        return [self.block(i, j) for i, j in self.block_indices(x0, y0, x1, y1)]

    def block(self, i: int, j: int) -> Block:
        """Block ``(i, j)``, from the cache when possible."""
        key = (i, j)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        blk = self.build_block(i, j)
        self._cache[key] = blk
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return blk

    # -- clearing ---------------------------------------------------------------------------
    def clear_year(self, i: int, j: int, emerge_year: int) -> int | None:
        """Year the slum of block ``(i, j)`` is cleared, or ``None``.

        In each group of ``CLEARING_GROUP x CLEARING_GROUP`` blocks with at least two slums,
        the slum with the lowest clearing hash is cleared.
        """
        gi, gj = i // CLEARING_GROUP, j // CLEARING_GROUP
        members = [
            (hash_unit(self.seed, "clear", a, b), a, b)
            for a in range(gi * CLEARING_GROUP, (gi + 1) * CLEARING_GROUP)
            for b in range(gj * CLEARING_GROUP, (gj + 1) * CLEARING_GROUP)
            if self.kind(a, b) == BlockKind.SLUM
        ]
        if len(members) < 2 or min(members)[1:] != (i, j):
            return None
        year = CLEAR_YEARS[int(hash_unit(self.seed, "clear-year", i, j) * len(CLEAR_YEARS))]
        if year - emerge_year < MIN_AGE_BEFORE_CLEAR:
            return None
        return year

    # -- generation -------------------------------------------------------------------------
    def build_block(self, i: int, j: int) -> Block:
        """Generate block ``(i, j)`` (pure function of seed and indices)."""
        kind = self.kind(i, j)
        rng = block_rng(self.seed, "block", i, j)
        rect = self.block_rect(i, j)
        builder = _BlockBuilder(layout=self, i=i, j=j, kind=kind, rng=rng, rect=rect)
        return builder.build()


@dataclass(frozen=True, slots=True)
class _Plot:
    rect: tuple[float, float, float, float]
    year_built: int


#: Parameters of one formal building: shape, cx, cy, length, width, angle, arm, year_built, height, pitched.
_FormalSpec = tuple[str, float, float, float, float, float, float, int, float, bool]


@dataclass
class _Chunk:
    """Buildings generated together, in the layout frame."""

    geometry: npt.NDArray[np.object_]
    shape_type: npt.NDArray[np.str_]
    centre: npt.NDArray[np.float64]
    angle: npt.NDArray[np.float64]
    year_built: npt.NDArray[np.int32]
    year_removed: npt.NDArray[np.int32]
    informal: npt.NDArray[np.bool_]
    height: npt.NDArray[np.float32]
    pitched: npt.NDArray[np.bool_]

    @staticmethod
    def concat(chunks: list[_Chunk]) -> _Chunk:
        if not chunks:
            return _Chunk(
                geometry=np.empty(0, dtype=object),
                shape_type=np.empty(0, dtype="<U1"),
                centre=np.empty((0, 2)),
                angle=np.empty(0),
                year_built=np.empty(0, dtype=np.int32),
                year_removed=np.empty(0, dtype=np.int32),
                informal=np.empty(0, dtype=bool),
                height=np.empty(0, dtype=np.float32),
                pitched=np.empty(0, dtype=bool),
            )
        names = (
            "geometry",
            "shape_type",
            "centre",
            "angle",
            "year_built",
            "year_removed",
            "informal",
            "height",
            "pitched",
        )
        return _Chunk(**{k: np.concatenate([getattr(c, k) for c in chunks]) for k in names})


class _BlockBuilder:
    """Accumulates one block's contents in the layout frame, then converts to the scene frame."""

    def __init__(
        self,
        *,
        layout: CityLayout,
        i: int,
        j: int,
        kind: BlockKind,
        rng: np.random.Generator,
        rect: tuple[float, float, float, float],
    ) -> None:
        self.layout = layout
        self.i, self.j = i, j
        self.kind = kind
        self.rng = rng
        self.rect = rect
        self.patches: list[tuple[BaseGeometry, Ground, int, int]] = []
        self.chunks: list[_Chunk] = []
        self.tree_pts: list[tuple[float, float, float]] = []
        self.slum: Slum | None = None

    # -- helpers --------------------------------------------------------------------------------
    def _shape(self, weights: tuple[float, ...]) -> str:
        return SHAPE_TYPES[_pick(self.rng, weights)]

    # -- block kinds ------------------------------------------------------------------------------
    def build(self) -> Block:
        base = Ground.VACANT
        if self.kind in (BlockKind.FORMAL, BlockKind.COMMERCIAL):
            base = Ground.SIDEWALK
            self._formal(self.kind, year_built=None)
        elif self.kind == BlockKind.PARK:
            base = Ground.SIDEWALK
            self._park()
        elif self.kind == BlockKind.OPEN:
            self._open()
        else:
            self._slum()
        self._markings()
        return self._finish(base)

    def _inner(self, inset: float) -> tuple[float, float, float, float]:
        u0, v0, u1, v1 = self.rect
        return (u0 + inset, v0 + inset, u1 - inset, v1 - inset)

    def _formal(self, kind: BlockKind, *, year_built: int | None, year_from: int = CALENDAR_START) -> None:
        """Plots with one regular building each; ``year_built`` forces a (re)development year."""
        rng = self.rng
        sidewalk = rng.uniform(*SIDEWALK_M)
        iu0, iv0, iu1, iv1 = self._inner(sidewalk)
        if iu1 - iu0 < 2 * MIN_FORMAL_SIDE_M or iv1 - iv0 < 2 * MIN_FORMAL_SIDE_M:
            return
        style = kind if kind in FORMAL_ROW_DEPTH_M else BlockKind.FORMAL
        if year_built is None and rng.random() < STREET_TREE_P:
            self._street_trees((iu0, iv0, iu1, iv1))
        n_rows = max(1, round((iv1 - iv0) / rng.uniform(*FORMAL_ROW_DEPTH_M[style])))
        row_edges = np.linspace(iv0, iv1, n_rows + 1)
        plots: list[_Plot] = []
        for r in range(n_rows):
            pu = iu0
            lo, hi = FORMAL_PLOT_WIDTH_M[style]
            while pu < iu1 - 1e-6:
                w = rng.uniform(lo, hi)
                if iu1 - (pu + w) < lo * MIN_LAST_PLOT_FRACTION:
                    w = iu1 - pu
                if year_built is not None:
                    yb = year_built
                elif rng.random() < NEW_FORMAL_P:
                    yb = int(rng.integers(NEW_FORMAL_YEARS[0], NEW_FORMAL_YEARS[1] + 1))
                else:
                    yb = int(rng.integers(OLD_BUILD_YEARS[0], OLD_BUILD_YEARS[1] + 1))
                plots.append(_Plot((pu, row_edges[r], pu + w, row_edges[r + 1]), yb))
                pu += w
        specs = [
            spec
            for plot in plots
            if (spec := self._formal_plot(style, plot, year_from=year_from)) is not None
        ]
        if specs:
            cols = list(zip(*specs, strict=True))
            geoms = footprints(
                np.asarray(cols[0]),
                cx=cols[1],
                cy=cols[2],
                length=cols[3],
                width=cols[4],
                angle=cols[5],
                arm=cols[6],
            )
            n = len(specs)
            self.chunks.append(
                _Chunk(
                    geometry=geoms,
                    shape_type=np.asarray(cols[0], dtype="<U1"),
                    centre=np.stack([cols[1], cols[2]], axis=1),
                    angle=np.asarray(cols[5], dtype=np.float64),
                    year_built=np.asarray(cols[7], dtype=np.int32),
                    year_removed=np.full(n, NEVER, dtype=np.int32),
                    informal=np.zeros(n, dtype=bool),
                    height=np.asarray(cols[8], dtype=np.float32),
                    pitched=np.asarray(cols[9], dtype=bool),
                )
            )

    def _formal_plot(self, style: BlockKind, plot: _Plot, *, year_from: int) -> _FormalSpec | None:
        """Ground patches and trees of a plot; returns its building's parameters (or ``None``)."""
        rng = self.rng
        pu0, pv0, pu1, pv1 = plot.rect
        yb = plot.year_built
        plot_box = box(pu0, pv0, pu1, pv1)
        r = rng.random()
        if r < LAWN_P[style]:
            ground = Ground.LAWN
        elif r < LAWN_P[style] + PARKING_P[style]:
            ground = Ground.PARKING
        else:
            ground = Ground.PAVED
        if yb > year_from:  # built during the calendar: vacant, then a construction site
            if year_from == CALENDAR_START:
                self.patches.append((plot_box, Ground.VACANT, year_from, yb - CONSTRUCTION_LEAD_YEARS))
            self.patches.append((plot_box, Ground.CONSTRUCTION, yb - CONSTRUCTION_LEAD_YEARS, yb))
        self.patches.append((plot_box, ground, yb, NEVER))
        lo, hi = FORMAL_SETBACK_M[style]
        su0, su1, sv0, sv1 = (rng.uniform(lo, hi) for _ in range(4))
        bu0, bu1, bv0, bv1 = pu0 + su0, pu1 - su1, pv0 + sv0, pv1 - sv1
        du, dv = bu1 - bu0, bv1 - bv0
        n_lo, n_hi = PLOT_TREES[style]
        self._scatter_trees(plot.rect, int(rng.integers(n_lo, n_hi + 1)), TREE_RADIUS_M)
        if du < MIN_FORMAL_SIDE_M or dv < MIN_FORMAL_SIDE_M:
            return None
        shape = self._shape(FORMAL_SHAPE_WEIGHTS)
        along_u = du >= dv
        angle = (0.0 if along_u else math.pi / 2) + rng.uniform(-1, 1) * FORMAL_ANGLE_JITTER_RAD
        if rng.random() < FLIP_P:
            angle += math.pi  # flip the shape's open side
        length, width = (du, dv) if along_u else (dv, du)
        return (
            shape,
            (bu0 + bu1) / 2,
            (bv0 + bv1) / 2,
            length,
            width,
            angle,
            float(rng.uniform(MIN_ARM, MAX_ARM)),
            yb,
            float(rng.uniform(*FORMAL_HEIGHT_M[style])),
            bool(rng.random() < FORMAL_PITCHED_P),
        )

    def _street_trees(self, inner: tuple[float, float, float, float]) -> None:
        rng = self.rng
        iu0, iv0, iu1, iv1 = inner
        for side in range(4):
            if rng.random() >= STREET_TREE_P:
                continue
            radius = rng.uniform(*STREET_TREE_RADIUS_M)
            spacing = rng.uniform(*STREET_TREE_SPACING_M)
            inset = radius * STREET_TREE_INSET
            if side in (0, 1):
                v = iv0 + inset if side == 0 else iv1 - inset
                for u in np.arange(iu0 + spacing / 2, iu1 - radius, spacing):
                    self.tree_pts.append((float(u), v, radius * rng.uniform(*STREET_TREE_VARIATION)))
            else:
                u = iu0 + inset if side == 2 else iu1 - inset
                for v in np.arange(iv0 + spacing / 2, iv1 - radius, spacing):
                    self.tree_pts.append((u, float(v), radius * rng.uniform(*STREET_TREE_VARIATION)))

    def _scatter_trees(
        self, rect: tuple[float, float, float, float], n: int, radius: tuple[float, float]
    ) -> None:
        u0, v0, u1, v1 = rect
        for _ in range(n):
            r = self.rng.uniform(*radius)
            if u1 - u0 <= 2 * r or v1 - v0 <= 2 * r:
                continue
            self.tree_pts.append((self.rng.uniform(u0 + r, u1 - r), self.rng.uniform(v0 + r, v1 - r), r))

    def _park(self) -> None:
        rng = self.rng
        inner = self._inner(rng.uniform(*SIDEWALK_M))
        iu0, iv0, iu1, iv1 = inner
        self.patches.append((box(*inner), Ground.LAWN, CALENDAR_START, NEVER))
        paths: list[BaseGeometry] = []
        if rng.random() < DIAGONAL_PATHS_P:
            paths.append(LineString([(iu0, iv0), (iu1, iv1)]))
            paths.append(LineString([(iu0, iv1), (iu1, iv0)]))
        else:
            edge = PARK_PATH_EDGE_FRACTION
            um = rng.uniform(iu0 + edge * (iu1 - iu0), iu1 - edge * (iu1 - iu0))
            vm = rng.uniform(iv0 + edge * (iv1 - iv0), iv1 - edge * (iv1 - iv0))
            paths.append(LineString([(um, iv0), (um, iv1)]))
            paths.append(LineString([(iu0, vm), (iu1, vm)]))
        path_area = shapely.union_all([p.buffer(PARK_PATH_WIDTH_M / 2, cap_style="flat") for p in paths])
        self.patches.append((path_area.intersection(box(*inner)), Ground.PATH, CALENDAR_START, NEVER))
        before = len(self.tree_pts)
        self._scatter_trees(inner, int(rng.integers(PARK_TREES[0], PARK_TREES[1] + 1)), TREE_RADIUS_M)
        # trees do not stand on the paths
        kept = [
            t
            for t in self.tree_pts[before:]
            if path_area.distance(shapely.Point(t[0], t[1])) > t[2] * (1.0 - TREE_OVERHANG)
        ]
        self.tree_pts[before:] = kept

    def _open(self) -> None:
        rng = self.rng
        self._scatter_trees(self.rect, int(rng.integers(OPEN_BUSHES[0], OPEN_BUSHES[1] + 1)), BUSH_RADIUS_M)
        if rng.random() < OPEN_DEVELOP_P:
            year = int(rng.integers(OPEN_DEVELOP_YEARS[0], OPEN_DEVELOP_YEARS[1] + 1))
            self._formal(BlockKind.FORMAL, year_built=year, year_from=CALENDAR_START)

    def _slum(self) -> None:
        rng = self.rng
        u0, v0, u1, v1 = self.rect
        setback = rng.uniform(*SLUM_SETBACK_M)
        buildable = box(u0 + setback, v0 + setback, u1 - setback, v1 - setback)
        if buildable.is_empty or buildable.area <= 0:
            return
        if rng.random() < PRE_EXISTING_P:
            emerge = int(rng.integers(PRE_EXISTING_YEARS[0], PRE_EXISTING_YEARS[1] + 1))
        else:
            emerge = NEW_SLUM_YEARS[_pick(rng, NEW_SLUM_WEIGHTS)]
        speed = float(rng.uniform(*SLUM_SPEED))
        cu = (u0 + u1) / 2 + rng.uniform(-1, 1) * SLUM_CENTRE_JITTER * (u1 - u0) / 2
        cv = (v0 + v1) / 2 + rng.uniform(-1, 1) * SLUM_CENTRE_JITTER * (v1 - v0) / 2
        corners = np.array([(u0, v0), (u1, v0), (u1, v1), (u0, v1)])
        r0 = float(np.hypot(corners[:, 0] - cu, corners[:, 1] - cv).max()) * STAR_RADIUS_MARGIN
        theta = np.linspace(0.0, 2.0 * math.pi, STAR_VERTICES, endpoint=False)
        profile = np.ones_like(theta)
        for k in STAR_HARMONICS:
            profile += rng.uniform(0, STAR_MAX_AMPLITUDE) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
        clear = self.layout.clear_year(self.i, self.j, emerge)
        slum = Slum(
            slum_id=block_id(self.i, self.j),
            emerge_year=emerge,
            clear_year=clear,
            speed=speed,
            centre=(cu, cv),
            radii=r0 * profile,
            buildable=buildable,
            frame=self.layout.frame,
        )
        self.slum = slum
        self._pack_informal(slum, buildable)
        if clear is not None and rng.random() < REDEVELOP_P and clear + REDEVELOP_DELAY_YEARS <= CALENDAR_END:
            self._formal(BlockKind.FORMAL, year_built=clear + REDEVELOP_DELAY_YEARS, year_from=clear)
        self._scatter_trees(self.rect, int(rng.integers(SLUM_TREES[0], SLUM_TREES[1] + 1)), TREE_RADIUS_M)

    def _pack_informal(self, slum: Slum, buildable: Polygon) -> None:
        """Dense rows of small roofs, abutting or overlapping, split by narrow irregular alleys.

        Rows of roofs run across the block at a slum-specific angle; the gap after each roof
        is drawn from :data:`ROOF_GAPS` (mostly abutting or overlapping), rows are separated
        by back-to-back contact or narrow alleys, and a few lanes cut across the rows.
        """
        rng = self.rng
        u0, v0, u1, v1 = buildable.bounds
        bu, bv = (u0 + u1) / 2, (v0 + v1) / 2
        reach = 0.5 * math.hypot(u1 - u0, v1 - v0)
        base_angle = rng.uniform(-math.pi / 4, math.pi / 4)
        lanes = rng.uniform(-reach, reach, size=int(rng.integers(LANES_PER_SLUM[0], LANES_PER_SLUM[1] + 1)))
        lane_widths = rng.uniform(*LANE_WIDTH_M, size=lanes.size)
        gap_p = np.cumsum([g[0] for g in ROOF_GAPS])
        gap_lo = np.asarray([g[1] for g in ROOF_GAPS])
        gap_hi = np.asarray([g[2] for g in ROOF_GAPS])
        per_row = int(2 * reach / INFORMAL_SIDE_M[0]) + 2
        parts: list[tuple[npt.NDArray[np.float64], ...]] = []
        s = -reach
        while s < reach:
            depth = rng.uniform(*INFORMAL_SIDE_M)
            row_angle = base_angle + math.radians(rng.normal(0, ROW_ANGLE_JITTER_DEG))
            lane_lo = lanes + rng.uniform(-LANE_WOBBLE_M, LANE_WOBBLE_M, size=lanes.size)
            lane_hi = lane_lo + lane_widths
            w = rng.uniform(*INFORMAL_SIDE_M, size=per_row)
            kind = np.minimum(
                np.searchsorted(gap_p, rng.random(per_row) * gap_p[-1], side="right"), len(ROOF_GAPS) - 1
            )
            gap = rng.uniform(gap_lo[kind], gap_hi[kind])
            t = -reach + rng.uniform(0, ROW_START_JITTER_M) + np.concatenate([[0.0], np.cumsum(w + gap)[:-1]])
            d = depth * rng.uniform(*ROOF_DEPTH_FRACTION, size=per_row)
            side = np.where(rng.random(per_row) < FLIP_P, -1.0, 1.0)
            across = s + depth / 2 + side * (depth - d) / 2
            across += rng.uniform(-ROOF_ACROSS_JITTER_M, ROOF_ACROSS_JITTER_M, size=per_row)
            jitter = np.radians(rng.normal(0, INFORMAL_ANGLE_JITTER_DEG, size=per_row))
            flip = rng.random(per_row) < FLIP_P
            keep = (t < reach) & ~((t[:, None] < lane_hi) & (t[:, None] + w[:, None] > lane_lo)).any(axis=1)
            ca, sa = math.cos(row_angle), math.sin(row_angle)
            along_t = t + w / 2
            along = w >= d
            angle = row_angle + np.where(along, 0.0, math.pi / 2) + jitter + np.where(flip, math.pi, 0.0)
            parts.append(
                (
                    (bu + ca * along_t - sa * across)[keep],
                    (bv + sa * along_t + ca * across)[keep],
                    np.where(along, w, d)[keep],
                    np.where(along, d, w)[keep],
                    angle[keep],
                )
            )
            s += depth + (
                rng.uniform(*ALLEY_WIDTH_M) if rng.random() < ALLEY_P else rng.uniform(*BACK_TO_BACK_M)
            )
        cu, cv, length, width, angle = (np.concatenate([p[k] for p in parts]) for k in range(5))
        n = cu.size
        if n == 0:
            return
        shape_p = np.cumsum(INFORMAL_SHAPE_WEIGHTS)
        shape_idx = np.minimum(
            np.searchsorted(shape_p, rng.random(n) * shape_p[-1], side="right"), len(SHAPE_TYPES) - 1
        )
        types = np.asarray(SHAPE_TYPES, dtype="<U1")[shape_idx]
        arm = rng.uniform(MIN_ARM, MAX_ARM, size=n)
        height = rng.uniform(*INFORMAL_HEIGHT_M, size=n)
        pitched = rng.random(n) < INFORMAL_PITCHED_P
        geoms = footprints(types, cx=cu, cy=cv, length=length, width=width, angle=angle, arm=arm)
        inside = shapely.contains(buildable, geoms)
        years = _first_contained_year(slum, geoms, inside)
        built = np.nonzero(years > 0)[0]
        removed = slum.clear_year if slum.clear_year is not None else NEVER
        self.chunks.append(
            _Chunk(
                geometry=geoms[built],
                shape_type=types[built],
                centre=np.stack([cu[built], cv[built]], axis=1),
                angle=angle[built],
                year_built=years[built].astype(np.int32),
                year_removed=np.full(built.size, removed, dtype=np.int32),
                informal=np.ones(built.size, dtype=bool),
                height=height[built].astype(np.float32),
                pitched=pitched[built],
            )
        )

    def _markings(self) -> None:
        """Dashed centre lines on the arterial roads west and north of the block."""
        u0, v0, u1, v1 = self.rect
        dashes: list[BaseGeometry] = []
        if self.i % ARTERIAL_EVERY == 0:
            uc = self.layout.line("u", self.i)[0]
            for v in np.arange(v0, v1 - DASH_LENGTH_M, DASH_PERIOD_M):
                dashes.append(box(uc - DASH_WIDTH_M / 2, v, uc + DASH_WIDTH_M / 2, v + DASH_LENGTH_M))
        if self.j % ARTERIAL_EVERY == 0:
            vc = self.layout.line("v", self.j)[0]
            for u in np.arange(u0, u1 - DASH_LENGTH_M, DASH_PERIOD_M):
                dashes.append(box(u, vc - DASH_WIDTH_M / 2, u + DASH_LENGTH_M, vc + DASH_WIDTH_M / 2))
        if dashes:
            self.patches.append((shapely.union_all(dashes), Ground.MARKING, CALENDAR_START, NEVER))

    # -- assembly ---------------------------------------------------------------------------------
    def _finish(self, base: Ground) -> Block:
        frame = self.layout.frame
        rng = self.rng
        chunk = _Chunk.concat(self.chunks)
        n = chunk.geometry.size
        bid = block_id(self.i, self.j)
        if n >= 1 << _ID_LOCAL_BITS:
            raise RuntimeError(f"block ({self.i}, {self.j}) has too many buildings ({n})")
        informal = chunk.informal
        roof = np.zeros((n, 4), dtype=np.float32)
        if informal.any():
            roof[informal] = sample_roof_colours(rng, int(informal.sum()), informal=True)
        if (~informal).any():
            roof[~informal] = sample_roof_colours(rng, int((~informal).sum()), informal=False)
        layout_geoms = chunk.geometry
        buildings = Buildings(
            geometry=frame.geoms_to_scene(layout_geoms) if n else np.empty(0, dtype=object),
            building_id=(np.int64(bid) << _ID_LOCAL_BITS) + np.arange(n, dtype=np.int64),
            shape_type=chunk.shape_type,
            year_built=chunk.year_built,
            year_removed=chunk.year_removed,
            informal=informal,
            height=chunk.height,
            roof=roof,
            pitched=chunk.pitched,
            angle=(chunk.angle + frame.angle).astype(np.float32),
            centre=frame.to_scene(chunk.centre),
            slum_id=np.where(informal, bid, -1).astype(np.int64),
        )
        trees = self._trees(layout_geoms)
        u0, v0, u1, v1 = self.rect
        kerbs = ((u0, v0, u0, v1), (u0, v1, u1, v1), (u1, v1, u1, v0), (u1, v0, u0, v0))
        patches = tuple(
            GroundPatch(geometry=frame.geom_to_scene(g), ground=gr, year_from=a, year_to=b)
            for g, gr, a, b in self.patches
            if not g.is_empty and b > a
        )
        return Block(
            i=self.i,
            j=self.j,
            kind=self.kind,
            polygon=frame.geom_to_scene(box(u0, v0, u1, v1)),
            base=base,
            patches=patches,
            buildings=buildings,
            trees=trees,
            slum=self.slum,
            kerbs=kerbs,
            seed=self.layout.seed,
            frame=frame,
        )

    def _trees(self, layout_geoms: npt.NDArray[np.object_]) -> Trees:
        if not self.tree_pts:
            return _empty_trees()
        pts = np.asarray(self.tree_pts, dtype=np.float64)
        discs = shapely.buffer(
            shapely.points(pts[:, :2]), pts[:, 2] * (1.0 - TREE_OVERHANG), quad_segs=TREE_QUAD_SEGS
        )
        keep = np.ones(len(pts), dtype=bool)
        if layout_geoms.size:
            tree_idx, _ = shapely.STRtree(layout_geoms).query(discs, predicate="intersects")
            keep[np.unique(tree_idx)] = False
        pts = pts[keep]
        n = len(pts)
        rng = self.rng
        colours = np.asarray(TREE_COLOURS, dtype=np.float32)[rng.integers(0, len(TREE_COLOURS), size=n)]
        colours = colours * rng.uniform(*TREE_BRIGHTNESS, size=(n, 1)).astype(np.float32)
        heights = pts[:, 2] * rng.uniform(*TREE_HEIGHT_PER_RADIUS, size=n)
        return Trees(
            centre=self.layout.frame.to_scene(pts[:, :2]),
            radius=pts[:, 2].astype(np.float32),
            height=heights.astype(np.float32),
            colour=colours.astype(np.float32),
        )


def _first_contained_year(
    slum: Slum, geoms: npt.NDArray[np.object_], eligible: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int32]:
    """First calendar year whose slum polygon contains each footprint (0 = never).

    A radial bound on the footprint vertices gives a candidate year (the polygon is a
    homothety of a star around the slum centre); shapely then confirms containment and
    pushes any footprint that pokes out of a concave part of the star to a later year.
    """
    out = np.zeros(len(geoms), dtype=np.int32)
    idx = np.nonzero(eligible)[0]
    if idx.size == 0:
        return out
    years = np.arange(slum.emerge_year, slum.last_year + 1)
    if years.size == 0:
        return out
    fractions = np.asarray([slum.fraction(int(y)) for y in years])
    # radial extent of each footprint relative to the full-grown star (piecewise-linear boundary)
    coords, owner = shapely.get_coordinates(geoms[idx], return_index=True)
    rel = coords - np.asarray(slum.centre)
    ang = np.mod(np.arctan2(rel[:, 1], rel[:, 0]), 2.0 * math.pi)
    step = 2.0 * math.pi / STAR_VERTICES
    k = np.floor(ang / step).astype(np.int64) % STAR_VERTICES
    t = ang - k * step
    r_a = slum.radii[k]
    r_b = slum.radii[(k + 1) % STAR_VERTICES]
    boundary = r_a * r_b * math.sin(step) / (r_a * np.sin(t) + r_b * np.sin(step - t))
    rho = np.hypot(rel[:, 0], rel[:, 1]) / boundary
    need = np.zeros(idx.size)
    np.maximum.at(need, owner, rho)
    pos = np.searchsorted(fractions, need - 1e-9, side="left")
    pending = pos < years.size
    while pending.any():
        for p in np.unique(pos[pending]):
            sel = np.nonzero(pending & (pos == p))[0]
            poly = slum.layout_polygon_at(float(fractions[p]))
            ok = shapely.contains(poly, geoms[idx[sel]])
            out[idx[sel[ok]]] = years[p]
            pending[sel[ok]] = False
            pos[sel[~ok]] += 1
        pending &= pos < years.size
    return out
