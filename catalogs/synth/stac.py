"""Static, self-contained STAC catalog of a synthetic city (one collection, one item per year).

Layout (relative links only, so the folder can be moved or served as is)::

    OUT/catalog.json
    OUT/<collection_id>/collection.json
    OUT/<collection_id>/<item_id>/<item_id>.json

Items carry the ``proj`` (``proj:code``, ``proj:shape``, ``proj:transform``) and ``eo``
(``eo:cloud_cover``; ``eo:bands`` on the image asset) extensions and the assets
``image``, ``cloud_mask`` and ``label_mask``; the collection links the vector labels and
``truth.json`` as collection-level assets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from rasterio.warp import transform_geom
from shapely import affinity
from shapely.geometry import Polygon, mapping

from .spec import SynthSpec

__all__ = ["BAND_INFO", "YearAssets", "item_datetime", "write_catalog"]

#: eo:bands per common name: (name, centre wavelength um, full width at half maximum um).
BAND_INFO: dict[str, tuple[str, float, float]] = {
    "red": ("RED", 0.655, 0.06),
    "green": ("GREEN", 0.56, 0.07),
    "blue": ("BLUE", 0.485, 0.07),
    "nir": ("NIR", 0.83, 0.12),
}
#: Acquisition time of day (UTC) of every scene.
ACQUISITION_MONTH, ACQUISITION_DAY, ACQUISITION_HOUR, ACQUISITION_MINUTE = 6, 15, 10, 30
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
WGS84 = "EPSG:4326"
COORD_DECIMALS = 9
LICENSE = "CC0-1.0"


@dataclass(frozen=True, slots=True)
class YearAssets:
    """What the writer produced for one year.

    Attributes:
        year: Acquisition year.
        image: The imagery COG.
        cloud_mask: The cloud-mask COG.
        label_mask: The slum-mask COG.
        cloud_cover: Cloud cover of the imaged part of the scene, percent.
        footprint: The imaged part of the raster in pixel coordinates ``(col, row)``.
    """

    year: int
    image: Path
    cloud_mask: Path
    label_mask: Path
    cloud_cover: float
    footprint: Polygon


def item_datetime(year: int) -> dt.datetime:
    """Nominal acquisition time of ``year``'s scene."""
    return dt.datetime(
        year, ACQUISITION_MONTH, ACQUISITION_DAY, ACQUISITION_HOUR, ACQUISITION_MINUTE, tzinfo=dt.timezone.utc
    )


def _round(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, COORD_DECIMALS)
    if isinstance(obj, list | tuple):
        return [_round(v) for v in obj]
    return obj


def _wgs84(spec: SynthSpec, pixel_polygon: Polygon) -> dict[str, Any]:
    """A pixel-space polygon as a GeoJSON polygon in WGS 84."""
    t = spec.transform
    in_crs = affinity.affine_transform(pixel_polygon, [t.a, t.b, t.d, t.e, t.c, t.f])
    geom = transform_geom(spec.crs, WGS84, mapping(in_crs))
    return {"type": geom["type"], "coordinates": _round(geom["coordinates"])}


def _bbox(geometry: dict[str, Any]) -> list[float]:
    coords: list[list[float]] = []

    def walk(node: Any) -> None:
        if isinstance(node, list) and node and isinstance(node[0], int | float):
            coords.append(node)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(geometry["coordinates"])
    xs = [c[0] for c in coords]
    ys = [c[1] for c in coords]
    return [min(xs), min(ys), max(xs), max(ys)]


def write_catalog(
    spec: SynthSpec,
    *,
    out: Path,
    years: list[YearAssets],
    slums: Path,
    buildings: Path,
    truth: Path,
) -> Path:
    """Write the static catalog under ``out`` and return the path of ``catalog.json``."""
    items: list[pystac.Item] = []
    for ya in years:
        geometry = _wgs84(spec, ya.footprint)
        item = pystac.Item(
            id=spec.item_id(ya.year),
            geometry=geometry,
            bbox=_bbox(geometry),
            datetime=item_datetime(ya.year),
            properties={"gsd": spec.resolution},
        )
        proj = ProjectionExtension.ext(item, add_if_missing=True)
        proj.code = spec.crs
        proj.shape = [spec.height, spec.width]
        proj.transform = list(spec.transform)[:6]
        eo = EOExtension.ext(item, add_if_missing=True)
        eo.cloud_cover = round(ya.cloud_cover, 3)
        image = pystac.Asset(
            href=str(ya.image.resolve()),
            media_type=pystac.MediaType.COG,
            roles=["data"],
            title=f"Synthetic {spec.resolution:g} m {spec.bands.upper()} image, {ya.year}",
        )
        EOExtension.ext(image).bands = [
            Band.create(
                name=BAND_INFO[common][0],
                common_name=common,
                center_wavelength=BAND_INFO[common][1],
                full_width_half_max=BAND_INFO[common][2],
            )
            for common in spec.band_names
        ]
        item.add_asset("image", image)
        item.add_asset(
            "cloud_mask",
            pystac.Asset(
                href=str(ya.cloud_mask.resolve()),
                media_type=pystac.MediaType.COG,
                roles=["cloud"],
                title="Cloud mask: 1 cloud, 0 clear, 255 outside the scene",
            ),
        )
        item.add_asset(
            "label_mask",
            pystac.Asset(
                href=str(ya.label_mask.resolve()),
                media_type=pystac.MediaType.COG,
                roles=["labels"],
                title="Slum mask: 1 slum, 0 non-slum, 255 outside the scene",
            ),
        )
        items.append(item)

    boxes = [item.bbox for item in items if item.bbox is not None]
    extent = pystac.Extent(
        pystac.SpatialExtent(
            [
                [
                    min(b[0] for b in boxes),
                    min(b[1] for b in boxes),
                    max(b[2] for b in boxes),
                    max(b[3] for b in boxes),
                ]
            ]
        ),
        pystac.TemporalExtent([[item_datetime(min(spec.years)), item_datetime(max(spec.years))]]),
    )
    collection = pystac.Collection(
        id=spec.collection_id,
        title=f"Synthetic city '{spec.name}' (seed {spec.seed})",
        description=(
            f"Procedural {spec.resolution:g} m city with formal districts and growing informal settlements, "
            f"{len(spec.years)} yearly scenes {min(spec.years)}-{max(spec.years)}, with full ground truth "
            "(slum masks and outlines, building footprints with R/U/T/I/L shape types)."
        ),
        extent=extent,
        license=LICENSE,
        keywords=["synthetic", "informal settlements", "slums", "change detection"],
    )
    collection.add_asset(
        "slums",
        pystac.Asset(
            href=str(slums.resolve()),
            media_type=PARQUET_MEDIA_TYPE,
            roles=["labels"],
            title="Slum outlines per year",
        ),
    )
    collection.add_asset(
        "buildings",
        pystac.Asset(
            href=str(buildings.resolve()),
            media_type=PARQUET_MEDIA_TYPE,
            roles=["labels"],
            title="Building footprints",
        ),
    )
    collection.add_asset(
        "truth",
        pystac.Asset(
            href=str(truth.resolve()),
            media_type=pystac.MediaType.JSON,
            roles=["metadata"],
            title="Ground truth summary",
        ),
    )
    collection.add_items(items)
    catalog = pystac.Catalog(
        id=f"{spec.collection_id}-catalog",
        description=f"slumwatch synthetic city '{spec.name}', seed {spec.seed}",
        title="slumwatch synthetic city",
    )
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(out.resolve()))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return out / "catalog.json"
