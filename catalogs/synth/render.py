"""Windowed rendering of one year's scene, cloud mask and slum mask.

A window is rendered from the blocks that touch it plus a margin (:func:`shadow_pad`)
wide enough for the longest shadow, and every random value is keyed by global pixel
position (:mod:`.noise`). Rendering a window alone therefore gives exactly the pixels of
the same window cut from a whole-scene render, and a city of any size is produced one
window at a time without ever holding a scene in memory.

Compositing, in reflectance-like units ``[0, 1]``: ground cover (two-colour mix, coarse
and fine texture, static grain) -> tree canopies (domed, lit from the sun) -> roofs
(material colour; informal roofs get patchy texture, dark seams and ridge shading, formal
roofs are smooth with a bright parapet) -> parked cars -> cast shadows (height field
marched towards the sun) -> a slight optical blur -> haze -> cloud shadows and clouds ->
sensor gain/offset -> per-pixel noise -> quantisation and the nodata swath.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from rasterio.features import rasterize
from rasterio.transform import Affine
from shapely.geometry.base import BaseGeometry

from .acquisition import MIN_SUN_ELEVATION_DEG, Acquisition, acquisition
from .layout import FORMAL_HEIGHT_M, Block, Buildings, Cars, CityLayout, Trees
from .noise import fbm, hash_key, pixel_normal, value_noise
from .palette import GROUND_LOOKS, Ground
from .spec import SynthError, SynthSpec

__all__ = [
    "CLOUD_CLEAR",
    "CLOUD_PRESENT",
    "IMAGE_NODATA",
    "MASK_NODATA",
    "RenderedWindow",
    "Renderer",
    "render_window",
    "shadow_pad",
]

#: Nodata value of the imagery.
IMAGE_NODATA = 0
#: Cloud and slum masks: value outside the imaged scene.
MASK_NODATA = 255
CLOUD_PRESENT = 1
CLOUD_CLEAR = 0
SLUM = 1
NON_SLUM = 0

#: Tallest shadow caster (the tallest commercial building).
MAX_CASTER_HEIGHT_M = max(hi for _, hi in FORMAL_HEIGHT_M.values())
#: Pixels of context kept around the core for the blur and roof-edge detection.
HALO_PX = 2
#: A pixel is shadowed when something towards the sun rises this much above the shadow line.
SHADOW_EPS_M = 0.3
#: Multiplicative tint in cast shadows (sky light is bluish), R, G, B, NIR.
SHADOW_TINT = np.array([0.40, 0.44, 0.56, 0.45], dtype=np.float32)
#: Side weight of the separable 3-tap optical blur.
BLUR_SIDE = 0.18

GROUND_COARSE_CELL_M = 6.0
GROUND_MIX_CELL_M = 14.0
GROUND_FINE_CELL_M = 1.3
#: How strongly the low-frequency field mixes a ground class's two colours.
GROUND_MIX_GAIN = 0.9
ROOF_FINE_CELL_M = 0.9
ROOF_PATCH_CELL_M = 2.4
GRAIN_WEIGHT = 0.5
#: Roof texture amplitudes (patches, fine, grain) for informal / formal roofs.
INFORMAL_ROOF_TEXTURE = (0.10, 0.07, 0.05)
FORMAL_ROOF_TEXTURE = (0.025, 0.02, 0.015)
INFORMAL_SEAM = 0.9
FORMAL_PARAPET = 1.06
RIDGE_CONTRAST = 0.14
TREE_DOME = 0.25
TREE_TEXTURE = (0.14, 0.06)
CAR_TEXTURE = 0.03

HAZE_COLOUR = np.array([0.74, 0.77, 0.82, 0.55], dtype=np.float32)
HAZE_CELL_M = 260.0
HAZE_VARIATION = 0.35
CLOUD_CELLS_M = (230.0, 90.0, 35.0)
CLOUD_WEIGHTS = (0.6, 0.3, 0.1)
CLOUD_RAMP = 0.14
CLOUD_MAX_OPACITY = 0.96
#: Opacity (relative to the maximum) from which a pixel is flagged as cloud.
CLOUD_MASK_LEVEL = 0.35
CLOUD_COLOUR = np.array([0.93, 0.93, 0.94, 0.80], dtype=np.float32)
CLOUD_TEXTURE = 0.06
CLOUD_TONE_RANGE = (0.9, 1.1)
CLOUD_ALTITUDE_M = 700.0
CLOUD_SHADOW_DEPTH = 0.45
UINT8_MAX = 255
UINT12_MAX = 4095
UINT16_SCALE = 16
_POLYGON_TYPE_ID = 3


@dataclass(frozen=True, slots=True)
class RenderedWindow:
    """One rendered window of one year.

    Attributes:
        row_off: Row of the window's upper-left pixel in the raster.
        col_off: Column of the window's upper-left pixel.
        image: ``(bands, h, w)`` pixels in the spec's dtype, 0 = nodata.
        cloud: ``(h, w)`` uint8, 1 cloud, 0 clear, 255 outside the imaged scene.
        label: ``(h, w)`` uint8, 1 slum, 0 non-slum, 255 outside the imaged scene.
        slum: ``(h, w)`` bool, the rasterised slum polygons ignoring nodata.
        valid: ``(h, w)`` bool, inside the raster and the imaged swath.
    """

    row_off: int
    col_off: int
    image: npt.NDArray[np.uint8] | npt.NDArray[np.uint16]
    cloud: npt.NDArray[np.uint8]
    label: npt.NDArray[np.uint8]
    slum: npt.NDArray[np.bool_]
    valid: npt.NDArray[np.bool_]


def shadow_pad(spec: SynthSpec) -> int:
    """Context margin (pixels) around a window: the longest possible shadow plus the halo."""
    longest = MAX_CASTER_HEIGHT_M / math.tan(math.radians(MIN_SUN_ELEVATION_DEG))
    return math.ceil(longest / spec.resolution) + HALO_PX + 1


def _geojson(geoms: npt.NDArray[np.object_]) -> list[dict[str, object] | BaseGeometry]:
    """GeoJSON-like mappings for rasterio, built in bulk for hole-free polygons (much faster
    than shapely's per-geometry ``__geo_interface__``); other geometries are passed through."""
    if geoms.size == 0:
        return []
    simple = (shapely.get_type_id(geoms) == _POLYGON_TYPE_ID) & (shapely.get_num_interior_rings(geoms) == 0)
    out: list[dict[str, object] | BaseGeometry] = list(geoms)
    idx = np.nonzero(simple)[0]
    if idx.size:
        rings = shapely.get_exterior_ring(geoms[idx])
        coords = shapely.get_coordinates(rings).tolist()
        ends = np.cumsum(shapely.get_num_coordinates(rings)).tolist()
        start = 0
        for k, end in zip(idx.tolist(), ends, strict=True):
            out[k] = {"type": "Polygon", "coordinates": [coords[start:end]]}
            start = end
    return out


def _raster(
    shapes: list[tuple[BaseGeometry, int]],
    *,
    shape: tuple[int, int],
    transform: Affine,
    fill: int,
    dtype: str,
) -> npt.NDArray[np.generic]:
    """Burn ``(geometry, value)`` pairs in order (later ones win) on a grid."""
    pairs = [(g, v) for g, v in shapes if g is not None and not g.is_empty]
    if not pairs:
        return np.full(shape, fill, dtype=dtype)
    geoms = _geojson(np.asarray([g for g, _ in pairs], dtype=object))
    return rasterize(
        zip(geoms, [v for _, v in pairs], strict=True),
        out_shape=shape,
        transform=transform,
        fill=fill,
        dtype=dtype,
    )


def _indexed(
    geoms: npt.NDArray[np.object_], *, shape: tuple[int, int], transform: Affine
) -> npt.NDArray[np.int32]:
    """Raster of ``1 + index`` of the last geometry covering each pixel (0 = none)."""
    if geoms.size == 0:
        return np.zeros(shape, dtype=np.int32)
    mappings = _geojson(geoms)
    burned = rasterize(
        zip(mappings, range(1, geoms.size + 1), strict=True),
        out_shape=shape,
        transform=transform,
        fill=0,
        dtype="int32",
    )
    return np.asarray(burned, dtype=np.int32)


@dataclass(frozen=True, slots=True, eq=False)
class _Window:
    """Year-independent context of one window: grids, blocks, trees and static textures.

    Region A is the window plus the shadow margin (height field); region B is the window
    plus :data:`HALO_PX` (colours). Coordinates are global pixel indices and scene metres.
    """

    row_off: int
    col_off: int
    height: int
    width: int
    a_shape: tuple[int, int]
    a_transform: Affine
    b_shape: tuple[int, int]
    b_transform: Affine
    b_in_a: tuple[slice, slice]
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    xs: npt.NDArray[np.float64]
    ys: npt.NDArray[np.float64]
    blocks: list[Block]
    trees: Trees
    tree_id: npt.NDArray[np.int32]
    tree_height: npt.NDArray[np.float32]
    buildings: Buildings
    mix: npt.NDArray[np.float32]
    coarse: npt.NDArray[np.float32]
    fine: npt.NDArray[np.float32]
    grain: npt.NDArray[np.float32]
    roof_patch: npt.NDArray[np.float32]
    roof_fine: npt.NDArray[np.float32]


class Renderer:
    """Renders windows of a city; keeps the layout cache and per-year conditions between calls.

    Args:
        spec: The city.
        layout: A layout to share (e.g. with the vector writer); a new one by default.
    """

    def __init__(self, spec: SynthSpec, *, layout: CityLayout | None = None) -> None:
        self.spec = spec
        self.layout = layout if layout is not None else CityLayout(spec.seed)
        self.pad = shadow_pad(spec)
        self._acq: dict[int, Acquisition] = {}
        nb = spec.count
        looks = [GROUND_LOOKS[Ground(g)] for g in range(len(Ground))]
        self._ground_a = np.asarray([lk.colour_a[:nb] for lk in looks], dtype=np.float32).T.copy()
        self._ground_b = np.asarray([lk.colour_b[:nb] for lk in looks], dtype=np.float32).T.copy()
        self._ground_coarse = np.asarray([lk.coarse for lk in looks], dtype=np.float32)
        self._ground_fine = np.asarray([lk.fine for lk in looks], dtype=np.float32)

    def acquisition(self, year: int) -> Acquisition:
        """The (cached) acquisition conditions of ``year``."""
        if year not in self._acq:
            self._acq[year] = acquisition(self.spec, year)
        return self._acq[year]

    def render(self, year: int, *, row_off: int, col_off: int, height: int, width: int) -> RenderedWindow:
        """Render the window ``[row_off, row_off + height) x [col_off, col_off + width)`` of ``year``.

        The window may extend beyond the raster; pixels outside it are nodata.
        """
        return next(self.render_years((year,), row_off=row_off, col_off=col_off, height=height, width=width))

    def render_years(
        self, years: tuple[int, ...], *, row_off: int, col_off: int, height: int, width: int
    ) -> Iterator[RenderedWindow]:
        """Render one window for several years, sharing the year-independent work."""
        if height <= 0 or width <= 0:
            raise SynthError(f"window must be non-empty, got {height}x{width}")
        win = self._window(row_off=row_off, col_off=col_off, height=height, width=width)
        for year in years:
            yield self._render_year(win, year)

    def _window(self, *, row_off: int, col_off: int, height: int, width: int) -> _Window:
        res = self.spec.resolution
        pad, halo = self.pad, HALO_PX
        a_shape = (height + 2 * pad, width + 2 * pad)
        a_row, a_col = row_off - pad, col_off - pad
        b_shape = (height + 2 * halo, width + 2 * halo)
        b_row, b_col = row_off - halo, col_off - halo
        rows = np.arange(b_row, b_row + b_shape[0], dtype=np.int64)
        cols = np.arange(b_col, b_col + b_shape[1], dtype=np.int64)
        xs = np.asarray((cols + 0.5) * res, dtype=np.float64)
        ys = np.asarray((rows + 0.5) * res, dtype=np.float64)
        a_transform = Affine(res, 0.0, a_col * res, 0.0, res, a_row * res)
        blocks = self.layout.blocks_in(
            a_col * res, a_row * res, (a_col + a_shape[1]) * res, (a_row + a_shape[0]) * res
        )
        trees = Trees.concat([b.trees for b in blocks])
        tree_id = _indexed(trees.geometry, shape=a_shape, transform=a_transform)
        tree_height = np.concatenate([[0.0], trees.height]).astype(np.float32)[tree_id]
        seed = self.spec.seed
        grain, _ = pixel_normal(hash_key(seed, "grain"), rows, cols)
        return _Window(
            row_off=row_off,
            col_off=col_off,
            height=height,
            width=width,
            a_shape=a_shape,
            a_transform=a_transform,
            b_shape=b_shape,
            b_transform=Affine(res, 0.0, b_col * res, 0.0, res, b_row * res),
            b_in_a=(slice(pad - halo, pad - halo + b_shape[0]), slice(pad - halo, pad - halo + b_shape[1])),
            rows=rows,
            cols=cols,
            xs=xs,
            ys=ys,
            blocks=blocks,
            trees=trees,
            tree_id=tree_id,
            tree_height=tree_height,
            buildings=Buildings.concat([b.buildings for b in blocks]),
            mix=np.clip(
                0.5
                + GROUND_MIX_GAIN * value_noise(hash_key(seed, "ground-mix"), xs, ys, cell=GROUND_MIX_CELL_M),
                0.0,
                1.0,
            ),
            coarse=value_noise(hash_key(seed, "ground-coarse"), xs, ys, cell=GROUND_COARSE_CELL_M),
            fine=value_noise(hash_key(seed, "ground-fine"), xs, ys, cell=GROUND_FINE_CELL_M),
            grain=grain,
            roof_patch=value_noise(hash_key(seed, "roof-patch"), xs, ys, cell=ROOF_PATCH_CELL_M),
            roof_fine=value_noise(hash_key(seed, "roof-fine"), xs, ys, cell=ROOF_FINE_CELL_M),
        )

    def _render_year(self, win: _Window, year: int) -> RenderedWindow:
        spec = self.spec
        res = spec.resolution
        nb = spec.count
        halo = HALO_PX
        height, width = win.height, win.width
        acq = self.acquisition(year)
        buildings = win.buildings.take(win.buildings.exists(year))
        roof_id = _indexed(buildings.geometry, shape=win.a_shape, transform=win.a_transform)
        heights = np.concatenate([[0.0], buildings.height]).astype(np.float32)
        height_field = np.where(roof_id > 0, heights[roof_id], win.tree_height)

        img = self._ground(win, year)
        self._trees(img, win, acq)
        self._roofs(img, win, buildings, roof_id, acq)
        self._cars(
            img, Cars.concat([b.cars(year) for b in win.blocks]), shape=win.b_shape, transform=win.b_transform
        )
        shadow = _cast_shadows(height_field, win.b_in_a, acq=acq, resolution=res)
        for b in range(nb):
            img[b] *= np.where(shadow, SHADOW_TINT[b], np.float32(1.0))
        core = _blur(img)[:, halo - 1 : halo - 1 + height, halo - 1 : halo - 1 + width]

        rows = win.rows[halo : halo + height]
        cols = win.cols[halo : halo + width]
        xs, ys = win.xs[halo : halo + width], win.ys[halo : halo + height]
        cloud_mask = self._atmosphere(core, acq, xs=xs, ys=ys)
        image = self._sensor(core, acq, rows=rows, cols=cols)
        valid = acq.valid(rows, cols, width=spec.width, height=spec.height)
        image[:, ~valid] = IMAGE_NODATA

        core_transform = Affine(res, 0.0, win.col_off * res, 0.0, res, win.row_off * res)
        slum_shapes: list[tuple[BaseGeometry, int]] = []
        for blk in win.blocks:
            if blk.slum is not None:
                poly = blk.slum.polygon(year)
                if poly is not None:
                    slum_shapes.append((poly, SLUM))
        slum = (
            _raster(
                slum_shapes, shape=(height, width), transform=core_transform, fill=NON_SLUM, dtype="uint8"
            )
            == SLUM
        )
        label = np.where(valid, slum.astype(np.uint8), np.uint8(MASK_NODATA)).astype(np.uint8)
        cloud = np.where(valid, cloud_mask.astype(np.uint8), np.uint8(MASK_NODATA)).astype(np.uint8)
        return RenderedWindow(
            row_off=win.row_off,
            col_off=win.col_off,
            image=image,
            cloud=cloud,
            label=label,
            slum=slum,
            valid=valid,
        )

    # -- layers -------------------------------------------------------------------------------
    def _ground(self, win: _Window, year: int) -> npt.NDArray[np.float32]:
        shapes: list[tuple[BaseGeometry, int]] = [(b.polygon, int(b.base)) for b in win.blocks]
        for blk in win.blocks:
            shapes.extend(blk.ground_shapes(year))
        burned = _raster(
            shapes, shape=win.b_shape, transform=win.b_transform, fill=int(Ground.ROAD), dtype="uint8"
        )
        ground = np.asarray(burned, dtype=np.intp)
        texture = 1.0 + np.take(self._ground_coarse, ground) * win.coarse
        texture += np.take(self._ground_fine, ground) * (win.fine + GRAIN_WEIGHT * win.grain)
        img = np.empty((self.spec.count, *win.b_shape), dtype=np.float32)
        for b in range(img.shape[0]):
            colour_a = np.take(self._ground_a[b], ground)
            colour_b = np.take(self._ground_b[b], ground)
            img[b] = (colour_a + (colour_b - colour_a) * win.mix) * texture
        return img

    def _trees(self, img: npt.NDArray[np.float32], win: _Window, acq: Acquisition) -> None:
        tree_id = win.tree_id[win.b_in_a]
        flat = np.flatnonzero(tree_id)
        if flat.size == 0:
            return
        rr, cc = np.divmod(flat, win.b_shape[1])
        trees = win.trees
        k = np.take(tree_id, flat) - 1
        sx, sy = acq.sun_direction
        dx = (np.take(win.xs, cc) - trees.centre[k, 0]) / trees.radius[k]
        dy = (np.take(win.ys, rr) - trees.centre[k, 1]) / trees.radius[k]
        leaf, grain = np.take(win.roof_fine, flat), np.take(win.grain, flat)
        shade = 1.0 + TREE_DOME * (dx * sx + dy * sy) + TREE_TEXTURE[0] * leaf + TREE_TEXTURE[1] * grain
        _paint(img, flat, trees.colour[k], shade)

    def _roofs(
        self,
        img: npt.NDArray[np.float32],
        win: _Window,
        buildings: Buildings,
        roof_id_a: npt.NDArray[np.int32],
        acq: Acquisition,
    ) -> None:
        roof_id = roof_id_a[win.b_in_a]
        flat = np.flatnonzero(roof_id)
        if flat.size == 0:
            return
        rr, cc = np.divmod(flat, win.b_shape[1])
        ids = np.take(roof_id, flat)
        k = ids - 1
        informal = buildings.informal[k]
        patch, fine, grain = (
            np.take(win.roof_patch, flat),
            np.take(win.roof_fine, flat),
            np.take(win.grain, flat),
        )
        amp = np.where(
            informal[:, None],
            np.asarray(INFORMAL_ROOF_TEXTURE, dtype=np.float32),
            np.asarray(FORMAL_ROOF_TEXTURE, dtype=np.float32),
        )
        factor = 1.0 + amp[:, 0] * patch + amp[:, 1] * fine + amp[:, 2] * grain
        # seams between abutting roofs (informal) and parapets (formal): a 4-neighbour differs
        wa = win.a_shape[1]
        fa = (rr + win.b_in_a[0].start) * wa + (cc + win.b_in_a[1].start)
        edge = (
            (np.take(roof_id_a, fa - wa) != ids)
            | (np.take(roof_id_a, fa + wa) != ids)
            | (np.take(roof_id_a, fa - 1) != ids)
            | (np.take(roof_id_a, fa + 1) != ids)
        )
        factor *= np.where(edge, np.where(informal, INFORMAL_SEAM, FORMAL_PARAPET), 1.0)
        # pitched roofs: the half facing the sun is brighter
        pitched = buildings.pitched[k]
        if pitched.any():
            ang = buildings.angle[k].astype(np.float64)
            nx, ny = -np.sin(ang), np.cos(ang)
            across = (np.take(win.xs, cc) - buildings.centre[k, 0]) * nx
            across += (np.take(win.ys, rr) - buildings.centre[k, 1]) * ny
            sx, sy = acq.sun_direction
            facing = np.sign(across) * (nx * sx + ny * sy)
            factor *= np.where(pitched, 1.0 + RIDGE_CONTRAST * facing, 1.0)
        _paint(img, flat, buildings.roof[k], factor)

    def _cars(
        self, img: npt.NDArray[np.float32], cars: Cars, *, shape: tuple[int, int], transform: Affine
    ) -> None:
        if cars.geometry.size == 0:
            return
        car_id = _indexed(cars.geometry, shape=shape, transform=transform)
        flat = np.flatnonzero(car_id)
        if flat.size:
            k = np.take(car_id, flat) - 1
            _paint(img, flat, cars.colour[k], np.full(flat.size, 1.0 + CAR_TEXTURE, dtype=np.float32))

    def _atmosphere(
        self,
        img: npt.NDArray[np.float32],
        acq: Acquisition,
        *,
        xs: npt.NDArray[np.float64],
        ys: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_]:
        """Haze, cloud shadows and clouds (in place); returns the cloud mask."""
        nb = img.shape[0]
        seed = self.spec.seed
        if acq.haze > 0.0:
            veil = value_noise(hash_key(seed, "haze", acq.year), xs, ys, cell=HAZE_CELL_M)
            h = (np.float32(acq.haze) * (np.float32(1.0) + np.float32(HAZE_VARIATION) * veil)).astype(
                np.float32
            )
            keep = np.float32(1.0) - h
            for b in range(nb):
                img[b] *= keep
                img[b] += h * HAZE_COLOUR[b]
        threshold = acq.cloud_threshold
        if not math.isfinite(threshold):
            return np.zeros(img.shape[1:], dtype=bool)
        key = hash_key(seed, "cloud", acq.year)
        density = fbm(key, xs, ys, cells=CLOUD_CELLS_M, weights=CLOUD_WEIGHTS)
        opacity = _cloud_opacity(density, threshold)
        sx, sy = acq.sun_direction
        throw = CLOUD_ALTITUDE_M / acq.shadow_slope
        shadow_density = fbm(
            key, xs + sx * throw, ys + sy * throw, cells=CLOUD_CELLS_M, weights=CLOUD_WEIGHTS
        )
        dim = np.float32(1.0) - np.float32(CLOUD_SHADOW_DEPTH) * _cloud_opacity(shadow_density, threshold)
        tone = np.clip(1.0 + CLOUD_TEXTURE * (density - threshold) / CLOUD_RAMP, *CLOUD_TONE_RANGE)
        tone = tone.astype(np.float32)
        clear = (np.float32(1.0) - opacity) * dim
        veil = opacity * tone
        for b in range(nb):
            img[b] *= clear
            img[b] += veil * CLOUD_COLOUR[b]
        mask: npt.NDArray[np.bool_] = opacity >= CLOUD_MASK_LEVEL * CLOUD_MAX_OPACITY
        return mask

    def _sensor(
        self,
        img: npt.NDArray[np.float32],
        acq: Acquisition,
        *,
        rows: npt.NDArray[np.int64],
        cols: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.uint8] | npt.NDArray[np.uint16]:
        """Gain, offset, noise and quantisation (never 0: 0 is nodata)."""
        spec = self.spec
        out_u8 = np.empty(img.shape, dtype=np.uint8) if spec.dtype == "uint8" else None
        out_u16 = np.empty(img.shape, dtype=np.uint16) if spec.dtype == "uint16" else None
        for b in range(img.shape[0]):
            noise, spare = pixel_normal(hash_key(spec.seed, "noise", acq.year, b), rows, cols)
            band = (
                img[b] * np.float32(acq.gain[b])
                + np.float32(acq.offset[b])
                + np.float32(acq.noise_sigma) * noise
            )
            np.clip(band, 0.0, 1.0, out=band)
            if out_u8 is not None:
                out_u8[b] = np.clip(np.rint(band * UINT8_MAX), 1, UINT8_MAX)
            elif out_u16 is not None:
                dn12 = np.clip(np.rint(band * UINT12_MAX), 1, UINT12_MAX).astype(np.uint16)
                out_u16[b] = dn12 * np.uint16(UINT16_SCALE) + spare.astype(np.uint16)
        if out_u8 is not None:
            return out_u8
        assert out_u16 is not None
        return out_u16


def _paint(
    img: npt.NDArray[np.float32],
    flat: npt.NDArray[np.intp],
    colour: npt.NDArray[np.float32],
    factor: npt.NDArray[np.floating],
) -> None:
    """Set ``img[:, flat] = colour * factor`` band by band (flat indices into one band)."""
    factor32 = factor.astype(np.float32, copy=False)
    for b in range(img.shape[0]):
        np.put(img[b], flat, colour[:, b] * factor32)


def _cloud_opacity(density: npt.NDArray[np.float32], threshold: float) -> npt.NDArray[np.float32]:
    t = np.clip((density - threshold) / CLOUD_RAMP, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t) * CLOUD_MAX_OPACITY).astype(np.float32)


def _cast_shadows(
    height_field: npt.NDArray[np.float32], region: tuple[slice, slice], *, acq: Acquisition, resolution: float
) -> npt.NDArray[np.bool_]:
    """Shadow mask of ``region`` of the height field: march towards the sun, compare with the sun ray."""
    r0, r1 = region[0].start, region[0].stop
    c0, c1 = region[1].start, region[1].stop
    own = height_field[r0:r1, c0:c1]
    peak = float(height_field.max()) if height_field.size else 0.0
    if peak <= SHADOW_EPS_M:
        return np.zeros(own.shape, dtype=bool)
    slope = acq.shadow_slope
    sx, sy = acq.sun_direction
    longest = min(
        peak / slope / resolution, float(min(r0, c0, height_field.shape[0] - r1, height_field.shape[1] - c1))
    )
    best = np.full(own.shape, -np.inf, dtype=np.float32)
    seen: set[tuple[int, int]] = set()
    for step in range(1, math.ceil(longest) + 1):
        dr, dc = round(step * sy), round(step * sx)
        if (dr, dc) in seen:
            continue
        seen.add((dr, dc))
        drop = np.float32(math.hypot(dr, dc) * resolution * slope)
        np.maximum(best, height_field[r0 + dr : r1 + dr, c0 + dc : c1 + dc] - drop, out=best)
    shadow: npt.NDArray[np.bool_] = best > own + SHADOW_EPS_M
    return shadow


def _blur(img: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Separable 3-tap blur; the result is one pixel smaller on every side."""
    side, centre = np.float32(BLUR_SIDE), np.float32(1.0 - 2.0 * BLUR_SIDE)
    rows = side * img[:, :-2, :] + centre * img[:, 1:-1, :] + side * img[:, 2:, :]
    out: npt.NDArray[np.float32] = side * rows[:, :, :-2] + centre * rows[:, :, 1:-1] + side * rows[:, :, 2:]
    return out


def render_window(
    spec: SynthSpec,
    *,
    year: int,
    row_off: int,
    col_off: int,
    height: int,
    width: int,
    layout: CityLayout | None = None,
) -> RenderedWindow:
    """Render one window of one year (see :class:`Renderer` to render many)."""
    if year not in spec.years:
        raise SynthError(f"year {year} is not one of the spec's years {spec.years}")
    return Renderer(spec, layout=layout).render(
        year, row_off=row_off, col_off=col_off, height=height, width=width
    )
