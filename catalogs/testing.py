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
from typing import Any

import numpy as np
import pystac
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine, array_bounds
from rasterio.warp import transform_bounds

__all__ = [
    "COMMON_NAMES",
    "FaultPlan",
    "LoopbackServer",
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


# --------------------------------------------------------------------------- loopback servers with faults


class FaultPlan:
    """Faults a :class:`LoopbackServer` injects, consumed in order per path prefix.

    Actions: ``"status:<code>"`` (429 answers carry ``Retry-After: 1``), ``"hang:<seconds>"``
    (sleep, then serve normally), ``"loop"`` (answer a JSON page whose ``next`` link points back
    at the same request, forever), ``"truncate:<fraction>"`` (send only part of a file).
    Add ``"*"`` as count to repeat an action forever.
    """

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._rules: list[tuple[str, list[str], bool]] = []
        self.requests: list[tuple[str, str, int]] = []
        self.headers: list[dict[str, str]] = []

    def add(self, prefix: str, *actions: str, forever: bool = False) -> FaultPlan:
        """Queue ``actions`` for requests whose path starts with ``prefix``."""
        with self._lock:
            self._rules.append((prefix, list(actions), forever))
        return self

    def take(self, path: str) -> str | None:
        """The next action for ``path`` (consumed unless the rule is ``forever``)."""
        with self._lock:
            for prefix, actions, forever in self._rules:
                if path.startswith(prefix) and actions:
                    return actions[0] if forever else actions.pop(0)
        return None

    def record(self, method: str, path: str, status: int, headers: dict[str, str] | None = None) -> None:
        """Log one answered request (and its request headers)."""
        with self._lock:
            self.requests.append((method, path, status))
            self.headers.append(dict(headers or {}))


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 serving files (with Range support) or proxying an upstream.

    Use as a context manager; ``url`` is its base URL. Faults come from ``plan``.

    Args:
        root: Folder to serve (file mode).
        upstream: Base URL to forward every request to (proxy mode).
        plan: Faults to inject.
    """

    def __init__(
        self, *, root: Path | None = None, upstream: str | None = None, plan: FaultPlan | None = None
    ) -> None:
        if (root is None) == (upstream is None):
            raise ValueError("give root or upstream")
        self.root = root
        self.upstream = upstream.rstrip("/") if upstream else None
        self.plan = plan or FaultPlan()
        self._server: object | None = None
        self.url = ""

    def __enter__(self) -> LoopbackServer:
        import threading
        from http.server import ThreadingHTTPServer

        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name=f"loopback-{self.url}", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        server = self._server
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]


def _make_handler(owner: LoopbackServer) -> type:
    import json as _json
    import time
    import urllib.error
    import urllib.request
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            owner.plan.record(self.command, self.path, status, dict(self.headers.items()))

        def _fault(self) -> str | None:
            action = owner.plan.take(self.path)
            if action is None:
                return None
            kind, _, arg = action.partition(":")
            if kind == "status":
                code = int(arg)
                headers = {"Content-Type": "application/json"}
                if code == 429:
                    headers["Retry-After"] = "1"
                self._send(code, _json.dumps({"code": code, "description": "injected"}).encode(), headers)
                return "done"
            if kind == "hang":
                time.sleep(float(arg))
                return None
            return action

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else None  # always drain: keep-alive
            action = self._fault()
            if action == "done":
                return
            if owner.upstream is not None:
                self._proxy(action)
            else:
                self._file(action)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def _proxy(self, action: str | None) -> None:
            body = self._body
            if action == "loop":
                page: dict[str, Any] = {
                    "type": "FeatureCollection",
                    "features": [],
                    "links": [{"rel": "next", "href": f"{owner.url}{self.path}", "method": self.command}],
                }
                upstream = urllib.request.Request(
                    f"{owner.upstream}{self.path}", data=body, method=self.command
                )
                for k in ("Content-Type", "Accept"):
                    if self.headers.get(k):
                        upstream.add_header(k, self.headers[k])
                with urllib.request.urlopen(upstream, timeout=30) as resp:
                    page["features"] = _json.loads(resp.read()).get("features", [])[:1]
                if body:
                    page["links"][0]["body"] = _json.loads(body)
                self._send(200, _json.dumps(page).encode(), {"Content-Type": "application/geo+json"})
                return
            req = urllib.request.Request(f"{owner.upstream}{self.path}", data=body, method=self.command)
            for k, v in self.headers.items():
                if k.lower() not in {"host", "content-length", "connection", "accept-encoding"}:
                    req.add_header(k, v)
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
            except urllib.error.HTTPError as err:
                status, data, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
            self._send(status, data, {"Content-Type": ctype or "application/json"})

        def _file(self, action: str | None) -> None:
            assert owner.root is not None
            rel = self.path.split("?", 1)[0].lstrip("/")
            path = (owner.root / rel).resolve()
            if owner.root.resolve() not in path.parents or not path.is_file():
                self._send(404, b"not found", {"Content-Type": "text/plain"})
                return
            size = path.stat().st_size
            if action is not None and action.startswith("truncate:"):
                size = int(size * float(action.split(":", 1)[1]))
            rng = self.headers.get("Range")
            ctype = "image/tiff" if path.suffix in {".tif", ".tiff"} else "application/json"
            start, end, status = 0, size - 1, 200
            headers = {"Content-Type": ctype, "Accept-Ranges": "bytes"}
            if rng and rng.startswith("bytes="):
                first, _, last = rng[6:].split(",")[0].partition("-")
                start = int(first) if first else max(0, size - int(last))
                end = min(size - 1, int(last)) if (first and last) else size - 1
                if start >= size:
                    self._send(416, b"", {"Content-Range": f"bytes */{size}"})
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            with path.open("rb") as fh:  # read only the asked range: big COGs stay cheap to serve
                fh.seek(start)
                data = fh.read(end + 1 - start)
            self._send(status, data, headers)

    return Handler
