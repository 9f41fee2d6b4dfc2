"""One search interface over STAC APIs and static STAC catalogs.

:func:`search_items` takes either a STAC API root URL (searched with pystac-client) or a
static catalog (local path, or ``http(s)://.../catalog.json``, walked with pystac and
filtered client-side). Both paths apply the same client-side filters (bbox / intersects,
datetime, collections, cloud cover), so the result does not depend on how well a server
implements the query/filter extensions.

HTTP hardening (pystac-client retries nothing and never times out by default):

- bounded retries with exponential backoff on connection errors, read timeouts and
  429/500/502/503/504, honouring ``Retry-After`` (capped);
- connect/read timeouts;
- a guard against ``next`` links that loop (seen-URL set) or never end (max pages);
- auth headers from the environment (``SLUMWATCH_STAC_TOKEN`` -> ``Authorization: Bearer``,
  ``SLUMWATCH_STAC_HEADERS`` -> a JSON object of headers) or passed in by the caller (e.g. a
  Prefect secret read by the flow). Header values are never logged.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pystac
import shapely.geometry
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from requests import Request
from urllib3.util.retry import Retry

from slumwatch.catalogs.errors import EmptySearchError, SearchError, StacApiError

__all__ = [
    "DEFAULT_DATETIME",
    "City",
    "HttpPolicy",
    "auth_headers_from_env",
    "city_bbox",
    "list_cities",
    "load_aoi",
    "open_stac_io",
    "search_items",
]

log = logging.getLogger(__name__)

#: Default search period: the monitoring decade.
DEFAULT_DATETIME = "2014-01-01/2024-12-31"
#: Environment variable holding a bearer token for the STAC API.
ENV_TOKEN = "SLUMWATCH_STAC_TOKEN"
#: Environment variable holding a JSON object of extra request headers.
ENV_HEADERS = "SLUMWATCH_STAC_HEADERS"
#: HTTP statuses that are retried.
RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
#: Items per page asked from an API.
PAGE_SIZE = 100
#: Conformance classes of the STAC API extensions used for server-side cloud filtering.
QUERY_CONFORMANCE = "https://api.stacspec.org/v1.0.0-rc.2/item-search#query"
FILTER_CONFORMANCE = "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter"
ITEM_SEARCH_CONFORMANCE = "https://api.stacspec.org/v1.0.0/item-search"
#: Property holding a scene's cloud cover in percent.
CLOUD_COVER = "eo:cloud_cover"


@dataclass(frozen=True)
class HttpPolicy:
    """How hard to try talking to a STAC API.

    Attributes:
        retries: Retries per request (connection errors, read timeouts, retried statuses).
        backoff: Base of the exponential backoff in seconds (``backoff * 2**n``).
        max_retry_after: Cap on a server's ``Retry-After`` in seconds.
        connect_timeout: TCP connect timeout in seconds.
        read_timeout: Socket read timeout in seconds.
        max_pages: Most ``next`` pages followed per search.
        page_size: Items per page asked from an API.
    """

    retries: int = 4
    backoff: float = 0.5
    max_retry_after: float = 60.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_pages: int = 1000
    page_size: int = PAGE_SIZE


class _CappedRetry(Retry):
    """urllib3 ``Retry`` whose honoured ``Retry-After`` is capped."""

    #: Upper bound of an honoured Retry-After, seconds (set per policy via a subclass).
    retry_after_cap: float = 60.0

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        if value is None:
            return None
        return min(float(value), self.retry_after_cap)


def _retry_for(policy: HttpPolicy) -> Retry:
    cls = type("_PolicyRetry", (_CappedRetry,), {"retry_after_cap": policy.max_retry_after})
    return cls(
        total=policy.retries,
        connect=policy.retries,
        read=policy.retries,
        status=policy.retries,
        other=0,
        backoff_factor=policy.backoff,
        status_forcelist=sorted(RETRY_STATUSES),
        allowed_methods=None,  # retry POST searches too: they are idempotent reads
        respect_retry_after_header=True,
        raise_on_status=False,
    )


class GuardedStacApiIO(StacApiIO):
    """``StacApiIO`` with retries, timeouts, a ``next``-loop guard and no header logging."""

    def __init__(self, *, headers: Mapping[str, str] | None = None, policy: HttpPolicy | None = None) -> None:
        self.policy = policy or HttpPolicy()
        super().__init__(
            headers=dict(headers or {}),
            timeout=(self.policy.connect_timeout, self.policy.read_timeout),
            max_retries=_retry_for(self.policy),
        )

    def update(
        self,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
        request_modifier: Any = None,
        timeout: Any = None,
    ) -> None:
        """Like ``StacApiIO.update`` but keeps the policy's timeouts (``Client.open`` passes ``None``)."""
        default = (self.policy.connect_timeout, self.policy.read_timeout)
        super().update(
            headers=headers,
            parameters=parameters,
            request_modifier=request_modifier,
            timeout=timeout if timeout is not None else default,
        )

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        """GET/POST ``href``; raise :class:`StacApiError` with the status and URL on failure."""
        method = (method or "GET").upper()
        if method in {"POST", "PUT", "PATCH"}:
            request = Request(method=method, url=href, headers=headers, json=parameters)
        else:
            request = Request(method=method, url=href, headers=headers, params=dict(parameters or {}))
        prepped = self.session.prepare_request(request)
        log.debug("STAC %s %s", method, prepped.url)  # never the headers: they may hold tokens
        try:
            resp = self.session.send(prepped, timeout=self.timeout)
        except Exception as err:
            raise StacApiError(
                f"STAC request {method} {href} failed after {self.policy.retries} retries: "
                f"{type(err).__name__}: {err}"
            ) from err
        if not 200 <= resp.status_code < 300:
            raise StacApiError(
                f"STAC request {method} {href} answered HTTP {resp.status_code} "
                f"(after up to {self.policy.retries} retries): {resp.text[:200]!r}",
                status_code=resp.status_code,
            )
        return resp.content.decode("utf-8")

    def get_pages(
        self, url: str, method: str | None = None, parameters: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield result pages, refusing a ``next`` link seen before and stopping at ``max_pages``."""
        page = self.read_json(url, method=method, parameters=parameters)
        seen: set[str] = {_page_key(url, method, parameters)}
        n_pages = 1
        while True:
            if not (page.get("features") or page.get("collections")):
                return
            yield page
            nxt = next((ln for ln in page.get("links", []) if ln.get("rel") == "next"), None)
            if nxt is None:
                return
            link = pystac.Link.from_dict(nxt)
            key = _page_key(link.href, nxt.get("method"), nxt.get("body"))
            if key in seen:
                raise StacApiError(
                    f"STAC API {url} returned a looping 'next' link ({link.href}) after {n_pages} pages"
                )
            if n_pages >= self.policy.max_pages:
                raise StacApiError(f"STAC API {url} paged past max_pages={self.policy.max_pages}; giving up")
            seen.add(key)
            n_pages += 1
            page = self.read_json(link, parameters=parameters)


def _page_key(url: str, method: str | None, body: Any) -> str:
    return f"{(method or 'GET').upper()} {url} {json.dumps(body, sort_keys=True, default=str)}"


def auth_headers_from_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Request headers from ``SLUMWATCH_STAC_TOKEN`` and ``SLUMWATCH_STAC_HEADERS``.

    Raises:
        SearchError: ``SLUMWATCH_STAC_HEADERS`` is not a JSON object of strings (the value
            itself is not echoed).
    """
    env = os.environ if env is None else env
    headers: dict[str, str] = {}
    raw = env.get(ENV_HEADERS)
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as err:
            raise SearchError(f"{ENV_HEADERS} is not valid JSON (at char {err.pos})") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise SearchError(f"{ENV_HEADERS} must be a JSON object of string header values")
        headers.update({str(k): v for k, v in parsed.items()})
    token = env.get(ENV_TOKEN)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def open_stac_io(
    *, headers: Mapping[str, str] | None = None, policy: HttpPolicy | None = None
) -> GuardedStacApiIO:
    """A hardened ``StacIO`` carrying ``headers`` merged over the environment's auth headers."""
    merged = {**auth_headers_from_env(), **dict(headers or {})}
    return GuardedStacApiIO(headers=merged, policy=policy)


# --------------------------------------------------------------------------- places and AOIs


@dataclass(frozen=True)
class City:
    """A named place of the bundled city table.

    Attributes:
        name: City name.
        country: Country name.
        bbox: ``(west, south, east, north)`` in WGS84 degrees.
    """

    name: str
    country: str
    bbox: tuple[float, float, float, float]


def list_cities() -> list[City]:
    """The bundled city table (``catalogs/data/cities.csv``)."""
    text = resources.files("slumwatch.catalogs").joinpath("data/cities.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return [
        City(
            name=r["name"],
            country=r["country"],
            bbox=(float(r["west"]), float(r["south"]), float(r["east"]), float(r["north"])),
        )
        for r in rows
    ]


def city_bbox(name: str) -> tuple[float, float, float, float]:
    """WGS84 bbox of a bundled city, matched case- and accent-insensitively on the name.

    Raises:
        SearchError: unknown city (the message lists the known ones).
    """
    key = _norm_name(name)
    cities = list_cities()
    for city in cities:
        if _norm_name(city.name) == key:
            return city.bbox
    known = ", ".join(c.name for c in cities)
    raise SearchError(f"unknown city {name!r}; known cities: {known}")


def _norm_name(name: str) -> str:
    import unicodedata

    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(folded.lower().replace("-", " ").split())


def load_aoi(path: Path) -> dict[str, Any]:
    """Read an AOI file (GeoJSON, GeoParquet, Shapefile, ... in any CRS) as one WGS84 GeoJSON geometry.

    Raises:
        SearchError: the file cannot be read or holds no geometry.
    """
    path = Path(path)
    if not path.exists():
        raise SearchError(f"AOI file {path} does not exist")
    try:
        import geopandas as gpd

        gdf = gpd.read_parquet(path) if path.suffix.lower() == ".parquet" else gpd.read_file(path)
    except Exception as err:
        raise SearchError(f"cannot read AOI file {path}: {err}") from err
    if gdf.empty or gdf.geometry.isna().all():
        raise SearchError(f"AOI file {path} holds no geometry")
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs("EPSG:4326")
    union = gdf.geometry.union_all()
    return dict(shapely.geometry.mapping(union))


# --------------------------------------------------------------------------- search


def _is_url(href: str) -> bool:
    parsed = urlparse(href)
    return parsed.scheme in {"http", "https"} and bool(parsed.netloc)


def _is_static(catalog: str | Path) -> bool:
    if isinstance(catalog, Path) or not _is_url(str(catalog)):
        return True
    return urlparse(str(catalog)).path.endswith(".json")


def _parse_interval(datetime: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``"A/B"`` / ``"A"`` / ``".."`` open ends -> UTC datetimes (dates extend to the day's end)."""
    parts = datetime.split("/") if "/" in datetime else [datetime, datetime]
    if len(parts) != 2:
        raise SearchError(f"datetime {datetime!r} is not an RFC 3339 instant or interval")

    def one(text: str, *, end: bool) -> dt.datetime | None:
        text = text.strip()
        if text in {"", ".."}:
            return None
        try:
            if len(text) == 4 and text.isdigit():
                value = dt.datetime(int(text), 12, 31, 23, 59, 59) if end else dt.datetime(int(text), 1, 1)
            elif len(text) == 10:
                value = dt.datetime.fromisoformat(text)
                if end:
                    value = value + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
            else:
                value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as err:
            raise SearchError(f"datetime {datetime!r}: cannot parse {text!r}") from err
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)

    return one(parts[0], end=False), one(parts[1], end=True)


def item_interval(item: pystac.Item) -> tuple[dt.datetime, dt.datetime]:
    """``(start, end)`` of an item (its datetime or start/end_datetime), timezone-aware."""
    start = item.common_metadata.start_datetime or item.datetime
    end = item.common_metadata.end_datetime or item.datetime
    if start is None or end is None:
        raise SearchError(f"item {item.id} has neither datetime nor start/end_datetime")

    def aware(value: dt.datetime) -> dt.datetime:
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)

    return aware(start), aware(end)


@dataclass(frozen=True)
class _Filter:
    """Client-side filter shared by the API and the static path."""

    geometry: shapely.geometry.base.BaseGeometry | None
    start: dt.datetime | None
    end: dt.datetime | None
    collections: frozenset[str] | None
    max_cloud_cover: float | None

    def accepts(self, item: pystac.Item) -> bool:
        if self.collections is not None and item.collection_id not in self.collections:
            return False
        i_start, i_end = item_interval(item)
        if self.start is not None and i_end < self.start:
            return False
        if self.end is not None and i_start > self.end:
            return False
        if self.max_cloud_cover is not None:
            cc = item.properties.get(CLOUD_COVER)
            if cc is not None and float(cc) > self.max_cloud_cover:
                return False
        if self.geometry is not None:
            if item.geometry is not None:
                footprint = shapely.geometry.shape(item.geometry)
            elif item.bbox is not None:
                footprint = shapely.geometry.box(*item.bbox[:4])
            else:
                return False
            if not footprint.intersects(self.geometry):
                return False
        return True


def search_items(
    *,
    catalog: str | Path,
    bbox: tuple[float, float, float, float] | None = None,
    intersects: dict[str, Any] | None = None,
    datetime: str = DEFAULT_DATETIME,
    collections: Sequence[str] | None = None,
    max_cloud_cover: float | None = None,
    limit: int | None = None,
    headers: Mapping[str, str] | None = None,
    policy: HttpPolicy | None = None,
    allow_empty: bool = False,
) -> list[pystac.Item]:
    """Find STAC items in an API or a static catalog.

    Args:
        catalog: STAC API root URL, or a static catalog (path or URL of its ``catalog.json``).
        bbox: ``(west, south, east, north)`` in WGS84 degrees.
        intersects: A GeoJSON geometry in WGS84 the items must intersect.
        datetime: RFC 3339 instant or interval (``"2014-01-01/2024-12-31"``, open ends ``..``).
        collections: Collection ids to keep.
        max_cloud_cover: Highest ``eo:cloud_cover`` (percent) kept; items without it are kept.
        limit: Most items returned.
        headers: Extra request headers (merged over the environment's auth headers).
        policy: Retry/timeout/paging policy of HTTP requests.
        allow_empty: Return ``[]`` instead of raising when nothing matches.

    Returns:
        Matching items sorted by (datetime, id).

    Raises:
        EmptySearchError: nothing matched (unless ``allow_empty``).
        StacApiError: the API failed after retries, or paged in a loop.
        SearchError: the catalog cannot be opened or the query is malformed.
    """
    if bbox is not None and intersects is not None:
        raise SearchError("give bbox or intersects, not both")
    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        if not (w < e and s < n and w >= -180 and e <= 180 and s >= -90 and n <= 90):
            raise SearchError(f"bbox {bbox} is not a WGS84 (west, south, east, north) box")
    geometry = shapely.geometry.box(*bbox) if bbox is not None else None
    if intersects is not None:
        geometry = shapely.geometry.shape(intersects)
    start, end = _parse_interval(datetime)
    flt = _Filter(
        geometry=geometry,
        start=start,
        end=end,
        collections=frozenset(collections) if collections is not None else None,
        max_cloud_cover=max_cloud_cover,
    )
    policy = policy or HttpPolicy()
    stac_io = open_stac_io(headers=headers, policy=policy)
    if _is_static(catalog):
        found = _search_static(catalog, flt, stac_io=stac_io, limit=limit)
        where = "static catalog"
    else:
        found = _search_api(
            str(catalog),
            flt,
            stac_io=stac_io,
            bbox=bbox,
            intersects=intersects,
            datetime=datetime,
            collections=collections,
            limit=limit,
            page_size=policy.page_size,
        )
        where = "STAC API"
    found.sort(key=lambda it: (item_interval(it)[0], it.id))
    if limit is not None:
        found = found[:limit]
    log.info("search %s %s: %d items", where, catalog, len(found))
    if not found and not allow_empty:
        raise EmptySearchError(
            f"no item in {where} {catalog} matches bbox={bbox} intersects={'yes' if intersects else 'no'} "
            f"datetime={datetime} collections={list(collections) if collections else None} "
            f"max_cloud_cover={max_cloud_cover}"
        )
    return found


def _search_static(
    catalog: str | Path, flt: _Filter, *, stac_io: GuardedStacApiIO, limit: int | None
) -> list[pystac.Item]:
    href = str(catalog)
    if not _is_url(href):
        path = Path(href)
        if path.is_dir():
            path = path / "catalog.json"
        if not path.exists():
            raise SearchError(f"static catalog {path} does not exist")
        href = str(path.resolve())
    try:
        root = pystac.read_file(href, stac_io=stac_io if _is_url(href) else None)
    except StacApiError:
        raise
    except Exception as err:
        raise SearchError(f"cannot open static catalog {href}: {err}") from err
    if isinstance(root, pystac.Item):
        candidates: Iterator[pystac.Item] = iter([root])
    elif isinstance(root, pystac.ItemCollection):
        candidates = iter(root.items)
    elif isinstance(root, pystac.Catalog):
        candidates = root.get_items(recursive=True)
    else:
        raise SearchError(f"{href} is neither a catalog, a collection, an item nor an item collection")
    out: list[pystac.Item] = []
    for item in candidates:
        if flt.accepts(item):
            # Relative asset hrefs only mean something next to the item's JSON: resolve them now,
            # so readers (and items passed between processes) find the files.
            item.make_asset_hrefs_absolute()
            out.append(item)
            if limit is not None and len(out) >= limit and flt.geometry is None:
                break
    return out


def _search_api(
    url: str,
    flt: _Filter,
    *,
    stac_io: GuardedStacApiIO,
    bbox: tuple[float, float, float, float] | None,
    intersects: dict[str, Any] | None,
    datetime: str,
    collections: Sequence[str] | None,
    limit: int | None,
    page_size: int,
) -> list[pystac.Item]:
    try:
        client = Client.open(url, stac_io=stac_io)
    except StacApiError:
        raise
    except (APIError, Exception) as err:
        raise SearchError(f"cannot open STAC API {url}: {err}") from err
    if not client.conforms_to("ITEM_SEARCH"):
        log.warning("STAC API %s does not conform to item-search; walking its catalog client-side", url)
        return [it for it in client.get_items(recursive=True) if flt.accepts(it)]
    kwargs: dict[str, Any] = {
        "bbox": list(bbox) if bbox is not None else None,
        "intersects": intersects,
        "datetime": datetime,
        "collections": list(collections) if collections is not None else None,
        "limit": min(page_size, limit) if limit else page_size,
        "max_items": limit,
    }
    if flt.max_cloud_cover is not None:
        if client.conforms_to("FILTER"):
            kwargs["filter"] = {"op": "<=", "args": [{"property": CLOUD_COVER}, flt.max_cloud_cover]}
            kwargs["filter_lang"] = "cql2-json"
        elif client.conforms_to("QUERY"):
            kwargs["query"] = {CLOUD_COVER: {"lte": flt.max_cloud_cover}}
    try:
        search = client.search(**kwargs)
        return [it for it in search.items() if flt.accepts(it)]
    except StacApiError:
        raise
    except APIError as err:
        raise StacApiError(f"STAC API {url} search failed: {err}") from err
