"""Tiny georeferenced COG + STAC fixtures for tests and benchmarks.

Everything is generated on the fly (``tmp_path`` in tests) so no binary is ever committed.
The items follow the synthetic city contract of ``docs/architecture.md``: asset ``image``
(COG, bands R,G,B[,NIR], uint8/uint16, nodata 0), asset ``cloud_mask`` (uint8, 1 = cloud,
0 = clear, 255 = outside), asset ``label_mask`` (uint8 1/0/255) and the properties
``proj:code``, ``proj:shape``, ``proj:transform``, ``eo:cloud_cover``, ``gsd``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine, array_bounds
from rasterio.warp import transform_bounds

__all__ = [
    "COMMON_NAMES",
    "SceneSpec",
    "make_item",
    "make_static_catalog",
    "scene_pixels",
    "write_cog",
]

#: eo:bands common names in file order.
COMMON_NAMES: tuple[str, ...] = ("red", "green", "blue", "nir")
#: Cloud-mask values.
CLOUD, CLEAR, OUTSIDE = 1, 0, 255
#: Block size of the generated COGs.
FIXTURE_BLOCK = 128


@dataclass(frozen=True)
class SceneSpec:
    """One synthetic scene (one year) on a UTM grid.

    Attributes:
        year: Acquisition year; the item datetime is ``<year>-06-15T10:30:00Z``.
        crs: CRS of the COG, e.g. ``"EPSG:32643"``.
        origin: ``(x, y)`` of the upper-left corner in ``crs`` units.
        resolution: Pixel size in metres.
        shape: ``(height, width)`` in pixels.
        nbands: 3 (RGB) or 4 (RGB + NIR).
        dtype: ``"uint8"`` or ``"uint16"``.
        cloud_fraction: Fraction of rows (from the top) flagged as cloud.
        seed: Random seed of the pixel values.
        nodata_border: Width of a nodata (0) frame around the scene, in pixels.
        all_nodata: Write nothing but nodata.
        item_id: Item id; defaults to ``scene-<year>``.
    """

    year: int
    crs: str = "EPSG:32643"
    origin: tuple[float, float] = (500_000.0, 2_100_000.0)
    resolution: float = 0.6
    shape: tuple[int, int] = (96, 128)
    nbands: int = 3
    dtype: str = "uint8"
    cloud_fraction: float = 0.0
    seed: int = 0
    nodata_border: int = 0
    all_nodata: bool = False
    item_id: str | None = None
    extra_properties: dict[str, object] = field(default_factory=dict)

    @property
    def transform(self) -> Affine:
        """Affine transform of the scene."""
        return Affine(self.resolution, 0.0, self.origin[0], 0.0, -self.resolution, self.origin[1])

    @property
    def id(self) -> str:
        """The STAC item id."""
        return self.item_id or f"scene-{self.year}"


def scene_pixels(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(image (band, y, x), cloud (y, x))`` arrays of a scene."""
    rng = np.random.default_rng(spec.seed + spec.year)
    h, w = spec.shape
    hi = 250 if spec.dtype == "uint8" else 4000
    image = rng.integers(1, hi, size=(spec.nbands, h, w)).astype(spec.dtype)
    cloud = np.zeros((h, w), dtype="uint8")
    n_cloud = round(spec.cloud_fraction * h)
    cloud[:n_cloud, :] = CLOUD
    if spec.nodata_border:
        b = spec.nodata_border
        frame = np.ones((h, w), dtype=bool)
        frame[b:-b, b:-b] = False
        image[:, frame] = 0
        cloud[frame] = OUTSIDE
    if spec.all_nodata:
        image[:] = 0
        cloud[:] = OUTSIDE
    return image, cloud


def write_cog(path: Path, data: np.ndarray, *, crs: str, transform: Affine, nodata: int | None = 0) -> Path:
    """Write ``data`` ((band, y, x) or (y, x)) as a tiled, compressed GeoTIFF with overviews."""
    if data.ndim == 2:
        data = data[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": str(data.dtype),
        "crs": CRS.from_user_input(crs),
        "transform": transform,
        "nodata": nodata,
        "blocksize": FIXTURE_BLOCK,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def make_item(spec: SceneSpec, *, root: Path, href_base: str | None = None) -> pystac.Item:
    """Write the scene's COGs under ``root/imagery`` and return its STAC item.

    Args:
        spec: The scene.
        root: Folder the COGs are written to.
        href_base: Base URL of the asset hrefs (e.g. ``http://127.0.0.1:8000``); absolute local
            paths when ``None``.
    """
    image, cloud = scene_pixels(spec)
    img_path = write_cog(root / "imagery" / f"{spec.id}.tif", image, crs=spec.crs, transform=spec.transform)
    cld_path = write_cog(
        root / "imagery" / f"{spec.id}_cloud.tif", cloud, crs=spec.crs, transform=spec.transform, nodata=None
    )
    label = np.zeros(spec.shape, dtype="uint8")
    label[: spec.shape[0] // 2, : spec.shape[1] // 2] = 1
    lbl_path = write_cog(
        root / "labels" / f"{spec.id}_label.tif", label, crs=spec.crs, transform=spec.transform, nodata=255
    )

    def href(p: Path) -> str:
        if href_base is None:
            return str(p.resolve())
        return f"{href_base.rstrip('/')}/{p.relative_to(root).as_posix()}"

    h, w = spec.shape
    left, bottom, right, top = array_bounds(h, w, spec.transform)
    w84 = transform_bounds(spec.crs, "EPSG:4326", left, bottom, right, top, densify_pts=21)
    geometry = {
        "type": "Polygon",
        "coordinates": [
            [[w84[0], w84[1]], [w84[2], w84[1]], [w84[2], w84[3]], [w84[0], w84[3]], [w84[0], w84[1]]]
        ],
    }
    n_valid = max(1, h * w)
    cloud_cover = 100.0 * float((cloud == CLOUD).sum()) / n_valid
    props: dict[str, object] = {
        "eo:cloud_cover": round(cloud_cover, 3),
        "proj:code": spec.crs,
        "proj:shape": [h, w],
        "proj:transform": list(spec.transform)[:6],
        "gsd": spec.resolution,
        **spec.extra_properties,
    }
    item = pystac.Item(
        id=spec.id,
        geometry=geometry,
        bbox=list(w84),
        datetime=dt.datetime(spec.year, 6, 15, 10, 30, tzinfo=dt.timezone.utc),
        properties=props,
        stac_extensions=[
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        ],
    )
    eo_bands = [{"name": COMMON_NAMES[i].upper(), "common_name": COMMON_NAMES[i]} for i in range(spec.nbands)]
    item.add_asset(
        "image",
        pystac.Asset(
            href=href(img_path),
            media_type=pystac.MediaType.COG,
            roles=["data"],
            extra_fields={"eo:bands": eo_bands},
        ),
    )
    item.add_asset(
        "cloud_mask", pystac.Asset(href=href(cld_path), media_type=pystac.MediaType.COG, roles=["cloud"])
    )
    item.add_asset(
        "label_mask", pystac.Asset(href=href(lbl_path), media_type=pystac.MediaType.COG, roles=["labels"])
    )
    return item


def make_static_catalog(
    specs: Sequence[SceneSpec], *, root: Path, collection_id: str = "fixture", href_base: str | None = None
) -> Path:
    """Write a self-contained static STAC catalog of ``specs`` under ``root``; return ``catalog.json``."""
    items = [make_item(s, root=root, href_base=href_base) for s in specs]
    catalog = pystac.Catalog(id="fixture-catalog", description="slumwatch test fixture")
    extent = pystac.Extent(
        pystac.SpatialExtent([_union_bbox([list(i.bbox or []) for i in items])]),
        pystac.TemporalExtent([[min(i.datetime for i in items if i.datetime), None]]),
    )
    collection = pystac.Collection(id=collection_id, description="fixture collection", extent=extent)
    collection.add_items(items)
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(root))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _union_bbox(boxes: Sequence[Sequence[float]]) -> list[float]:
    arr = np.asarray(boxes, dtype=float)
    return [float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())]
