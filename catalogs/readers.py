"""Asset readers behind a :class:`AssetReader` protocol.

The cube builder never touches GDAL directly: it asks a reader to *probe* an asset's
header (CRS, band count, dtype) and to *read a window* of a year's items onto a target
grid. :class:`OdcStacReader` does both with rasterio and :func:`odc.stac.load`; tests wrap
or replace it to inject faults (404s, truncated files, kills mid-run).

Every failure becomes a typed :class:`~slumwatch.catalogs.errors.AssetError` naming the
href: a missing asset is never silently read as nodata.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pystac
import rasterio
import rasterio.errors
from odc.geo.geobox import GeoBox

from slumwatch.catalogs.errors import (
    AssetError,
    AssetNotFoundError,
    AssetReadError,
    TruncatedAssetError,
)

__all__ = [
    "CLEAR",
    "GDAL_HTTP_OPTIONS",
    "AssetInfo",
    "AssetReader",
    "OdcStacReader",
    "WindowData",
    "WindowRequest",
    "classify_read_error",
]

log = logging.getLogger(__name__)

#: Cloud-mask value of a clear pixel; anything else (cloud, shadow, outside) is unusable.
CLEAR = 0
#: Cloud-mask fill outside an item's footprint.
MASK_FILL = 255
#: The raster extension, used to tell odc-stac band counts/dtypes it cannot guess.
RASTER_EXT = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
#: GDAL options for reading COGs over HTTP: bounded retries on 429/5xx, timeouts, no dir listing.
GDAL_HTTP_OPTIONS: Mapping[str, Any] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_CACHEMAX": 64,  # MB of block cache: bounded, so memory stays flat over a citywide AOI
    "GDAL_HTTP_MAX_RETRY": 4,
    "GDAL_HTTP_RETRY_DELAY": 0.5,
    "GDAL_HTTP_TIMEOUT": 60,
    "GDAL_HTTP_CONNECTTIMEOUT": 10,
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
    "VSI_CACHE": "TRUE",
}

_NOT_FOUND = re.compile(r"\b404\b|not found|no such file|does not exist|not recognized as", re.IGNORECASE)
_TRUNCATED = re.compile(
    r"truncat|tiffread|ireadblock|read error|readencoded|unexpected end|premature|short read"
    r"|decod|deflate|zipdecode|lzw|not enough data|offset.*beyond|size of block|got \d+ bytes, expected",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class AssetInfo:
    """Header of a raster asset.

    Attributes:
        href: Where it was read from.
        crs: CRS as ``"EPSG:nnnn"`` (or WKT when it has no EPSG code); ``None`` when absent.
        count: Number of bands.
        dtype: Numpy dtype name of the bands.
        nodata: Nodata value, if declared.
        shape: ``(height, width)`` in pixels.
    """

    href: str
    crs: str | None
    count: int
    dtype: str
    nodata: float | None
    shape: tuple[int, int]


@dataclass(frozen=True)
class WindowRequest:
    """Read one window of one year's items onto a grid.

    Attributes:
        year: The composite's year (for messages).
        window_id: The window's tile id at window scale (for messages).
        items: Items in composite priority order (best first).
        geobox: Target grid of the window.
        asset: Imagery asset key.
        band_indices: 1-based band indices of ``asset`` to read, in output order.
        mask_asset: Cloud-mask asset key, or ``None``.
        resampling: Resampling of the imagery (the mask always uses nearest).
        dtype: Output dtype of the imagery.
        nodata: Nodata of the imagery.
    """

    year: int
    window_id: str
    items: tuple[pystac.Item, ...]
    geobox: GeoBox
    asset: str
    band_indices: tuple[int, ...]
    mask_asset: str | None
    resampling: str
    dtype: str
    nodata: int


@dataclass(frozen=True)
class WindowData:
    """What a reader returns for a :class:`WindowRequest`.

    Attributes:
        image: ``(item, band, y, x)`` in the request dtype, nodata outside an item.
        mask: ``(item, y, x)`` uint8 cloud mask (``CLEAR`` = usable), or ``None`` without mask asset.
    """

    image: np.ndarray
    mask: np.ndarray | None


@runtime_checkable
class AssetReader(Protocol):
    """Reads asset headers and windows; implementations raise :class:`AssetError` subclasses."""

    def probe(self, href: str) -> AssetInfo:
        """Header of the raster at ``href``."""
        ...

    def read_window(self, request: WindowRequest) -> WindowData:
        """Pixels of ``request.items`` on ``request.geobox``."""
        ...


def classify_read_error(err: BaseException, *, href: str | Sequence[str], context: str = "") -> AssetError:
    """Turn a GDAL/rasterio/odc failure into the matching typed :class:`AssetError`."""
    if isinstance(err, AssetError):
        return err
    hrefs = [href] if isinstance(href, str) else list(href)
    chain: list[BaseException] = []
    cur: BaseException | None = err
    while cur is not None and cur not in chain and len(chain) < 8:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    text = " <- ".join(f"{type(e).__name__}: {e}" for e in chain)
    culprit = next((h for h in hrefs if h and h in text), None)
    if culprit is None:
        culprit = next((h for h in hrefs if h and h.rsplit("/", 1)[-1] in text), None)
    where = culprit or ", ".join(hrefs)
    suffix = f" ({context})" if context else ""
    if _NOT_FOUND.search(text):
        return AssetNotFoundError(f"asset not found: {where}{suffix}: {text}", href=culprit or where)
    if _TRUNCATED.search(text):
        return TruncatedAssetError(
            f"asset truncated or corrupt: {where}{suffix}: {text}", href=culprit or where
        )
    return AssetReadError(f"cannot read asset {where}{suffix}: {text}", href=culprit or where)


def _crs_string(crs: rasterio.crs.CRS | None) -> str | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def annotate_item(
    item: pystac.Item, *, asset: str, count: int, dtype: str, nodata: int, mask_asset: str | None
) -> pystac.Item:
    """A copy of ``item`` whose assets carry ``raster:bands`` (band count, dtype, nodata) for odc-stac."""
    clone = item.clone()
    clone.assets[asset].extra_fields["raster:bands"] = [
        {"data_type": dtype, "nodata": nodata} for _ in range(count)
    ]
    if mask_asset is not None and mask_asset in clone.assets:
        clone.assets[mask_asset].extra_fields["raster:bands"] = [{"data_type": "uint8", "nodata": MASK_FILL}]
    if RASTER_EXT not in clone.stac_extensions:
        clone.stac_extensions.append(RASTER_EXT)
    return clone


class OdcStacReader:
    """The production reader: rasterio for headers, :func:`odc.stac.load` for windows.

    Args:
        threads: Threads odc-stac uses to read one window's items and bands concurrently.
        gdal_options: GDAL configuration applied to every read.
    """

    _configured_lock = threading.Lock()
    _configured = False

    def __init__(self, *, threads: int = 1, gdal_options: Mapping[str, Any] | None = None) -> None:
        self.threads = threads
        self.gdal_options = dict(GDAL_HTTP_OPTIONS if gdal_options is None else gdal_options)
        with self._configured_lock:
            if not OdcStacReader._configured:
                import odc.stac

                odc.stac.configure_rio(cloud_defaults=False, **self.gdal_options)
                OdcStacReader._configured = True

    def probe(self, href: str) -> AssetInfo:
        """Open ``href`` and return its header."""
        try:
            with rasterio.Env(**self.gdal_options), rasterio.open(href) as src:
                return AssetInfo(
                    href=href,
                    crs=_crs_string(src.crs),
                    count=src.count,
                    dtype=str(src.dtypes[0]),
                    nodata=src.nodata,
                    shape=(src.height, src.width),
                )
        except Exception as err:
            raise classify_read_error(err, href=href, context="probing header") from err

    def read_window(self, request: WindowRequest) -> WindowData:
        """Load the request's items band-stacked onto its geobox with odc-stac.

        Imagery and cloud mask come from one ``odc.stac.load`` call when every item has the
        mask (dtype/nodata per band from the ``raster:bands`` that :func:`annotate_item` set).
        """
        items = list(request.items)
        bands = [f"{request.asset}.{i}" for i in request.band_indices]
        context = f"year {request.year}, window {request.window_id}"
        h, w = request.geobox.shape.yx
        mask_key = request.mask_asset
        with_mask = [i for i, it in enumerate(items) if mask_key is not None and mask_key in it.assets]
        joint = mask_key is not None and len(with_mask) == len(items)
        load_bands = [*bands, mask_key] if joint and mask_key is not None else bands
        hrefs = [it.assets[k].href for it in items for k in (request.asset, mask_key) if k and k in it.assets]
        ds = self._load(items, load_bands, request, hrefs=hrefs, context=context)
        image = np.stack([ds[b].values for b in bands], axis=1)
        if image.shape != (len(items), len(bands), h, w):
            raise AssetReadError(
                f"odc-stac returned shape {image.shape} for {context}, "
                f"expected {(len(items), len(bands), h, w)}",
                href=", ".join(hrefs),
            )
        if mask_key is None:
            return WindowData(image=image, mask=None)
        if joint:
            return WindowData(image=image, mask=np.asarray(ds[mask_key].values, dtype="uint8"))
        mask = np.full((len(items), h, w), CLEAR, dtype="uint8")
        if with_mask:
            mask_items = [items[i] for i in with_mask]
            mhrefs = [it.assets[mask_key].href for it in mask_items]
            mds = self._load(mask_items, [mask_key], request, hrefs=mhrefs, context=context)
            mask[with_mask] = np.asarray(mds[mask_key].values, dtype="uint8")
        return WindowData(image=image, mask=mask)

    def _load(
        self,
        items: Sequence[pystac.Item],
        bands: Sequence[str],
        request: WindowRequest,
        *,
        hrefs: Sequence[str],
        context: str,
    ) -> Any:
        import odc.stac

        resampling = {"*": request.resampling}
        if request.mask_asset is not None:
            resampling[request.mask_asset] = "nearest"
        try:
            ds = odc.stac.load(
                list(items),
                bands=list(bands),
                geobox=request.geobox,
                groupby=_by_position,
                resampling=resampling,
                pool=self.threads if self.threads > 1 else None,
                preserve_original_order=True,
                fail_on_error=True,
            )
            ds.load()
        except Exception as err:
            raise classify_read_error(err, href=list(hrefs), context=context) from err
        if ds.sizes.get("time") != len(items):
            raise AssetReadError(
                f"odc-stac grouped {len(items)} items into {ds.sizes.get('time')} slices ({context})",
                href=", ".join(hrefs),
            )
        return ds


def _by_position(item: pystac.Item, parsed: Any, idx: int) -> str:
    """odc-stac groupby: one output slice per input item, keyed (and sorted) by its position."""
    return f"{idx:08d}"
