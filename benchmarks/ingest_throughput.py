"""Ingest throughput and peak memory of :func:`slumwatch.catalogs.cube.build_cube`.

1. Throughput: build_cube (windowed, crash-safe, composited) against the plain
   ``odc.stac.load(..., chunks=...).to_zarr(...)`` on the same COGs served over loopback HTTP
   (Range requests), same grid, same bands + cloud mask. Prints the ratio (goal >= 0.9).
2. Peak memory: build_cube in a fresh subprocess for AOIs of growing size (RSS sampled every
   10 ms during the build); the goal is a flat curve, since in-flight work is bounded by
   ``workers`` windows (1024 px here) and GDAL's block cache is capped, whatever the AOI.

Default run: a few minutes on 2 cores. ``--help`` for sizes.

    .venv/bin/python benchmarks/ingest_throughput.py [--size 4096] [--years 2] [--mem-sizes 2048,4096,8192]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: Resolution of the synthetic scenes (m).
RES = 0.6
#: Upper-left corner of the scenes (UTM 43N, on the 0.6 m lattice).
ORIGIN = (500_000.4, 2_100_000.0)
#: Chunk/tile size used by both paths.
TILE = 512


#: A file server in its own process: prints its URL, serves until terminated.
SERVE_CODE = (
    "import sys, time; from pathlib import Path; from slumwatch.catalogs.testing import LoopbackServer\n"
    "with LoopbackServer(root=Path(sys.argv[1])) as srv:\n"
    "    print(srv.url, flush=True)\n"
    "    while True: time.sleep(60)\n"
)
#: Rows written per strip by the streaming scene generator.
STRIP = 512


def _write_scene_cog(path: Path, *, size: int, year: int, kind: str) -> None:
    """Stream a compressible ``size`` x ``size`` scene (RGB uint8, or its cloud mask) into a COG.

    Strips go into a tiled GTiff which is then copied to a COG, so memory stays small even for
    8k x 8k scenes.
    """
    import rasterio
    import rasterio.shutil
    from rasterio.transform import Affine
    from rasterio.windows import Window

    count = 3 if kind == "image" else 1
    tmp = path.with_suffix(".tmp.tif")
    profile = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": count,
        "dtype": "uint8",
        "crs": "EPSG:32643",
        "transform": Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1]),
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "deflate",
        "nodata": 0 if kind == "image" else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(year)
    xs = np.arange(size)
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, STRIP):
            rows = np.arange(r0, min(size, r0 + STRIP))
            if kind == "image":
                base = 60 + 40 * np.sin(xs / 37.0)[None, :] + 40 * np.cos(rows / 53.0)[:, None]
                noise = rng.integers(-8, 8, size=(count, len(rows), size))
                block = np.clip(base[None] + noise + np.arange(count)[:, None, None] * 20, 1, 250)
            else:
                block = (rows[:, None] < size // 10).astype("uint8") * np.ones((1, size), dtype="uint8")
                block = block[None]
            dst.write(block.astype("uint8"), window=Window(0, r0, size, len(rows)))
    rasterio.shutil.copy(tmp, path, driver="COG", BLOCKSIZE=TILE, COMPRESS="DEFLATE")
    tmp.unlink()


def _scene(root: Path, year: int, size: int, href_base: str | None) -> object:
    """One year's scene (image + cloud mask COGs) and its STAC item, like the synthetic city's."""
    import datetime as dt

    import pystac
    from rasterio.warp import transform_bounds

    img = root / "imagery" / f"{year}.tif"
    cld = root / "imagery" / f"{year}_cloud.tif"
    _write_scene_cog(img, size=size, year=year, kind="image")
    _write_scene_cog(cld, size=size, year=year, kind="cloud")
    left, top = ORIGIN
    right, bottom = left + size * RES, top - size * RES
    w, s, e, n = transform_bounds("EPSG:32643", "EPSG:4326", left, bottom, right, top)
    item = pystac.Item(
        id=f"bench-{year}",
        geometry={"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        bbox=[w, s, e, n],
        datetime=dt.datetime(year, 6, 15, 10, 30, tzinfo=dt.timezone.utc),
        properties={
            "eo:cloud_cover": 10.0,
            "proj:code": "EPSG:32643",
            "proj:shape": [size, size],
            "proj:transform": [RES, 0, left, 0, -RES, top],
            "gsd": RES,
        },
    )

    def href(p: Path) -> str:
        return str(p.resolve()) if href_base is None else f"{href_base}/{p.relative_to(root).as_posix()}"

    bands = [{"name": n.upper(), "common_name": n} for n in ("red", "green", "blue")]
    item.add_asset(
        "image",
        pystac.Asset(
            href(img), media_type=pystac.MediaType.COG, roles=["data"], extra_fields={"eo:bands": bands}
        ),
    )
    item.add_asset("cloud_mask", pystac.Asset(href(cld), media_type=pystac.MediaType.COG, roles=["cloud"]))
    return item


def _items(root: Path, *, size: int, years: int, href_base: str | None) -> list:
    return [_scene(root, 2015 + i, size, href_base) for i in range(years)]


def _annotated(items: list) -> list:
    from slumwatch.catalogs.readers import annotate_item

    return [
        annotate_item(it, asset="image", count=3, dtype="uint8", nodata=0, mask_asset="cloud_mask")
        for it in items
    ]


def run_ours(items: list, out: Path, *, size: int, workers: int, window_tiles: int = 4) -> float:
    from slumwatch.catalogs.cube import GridSpec, build_cube
    from slumwatch.catalogs.readers import OdcStacReader
    from slumwatch.catalogs.tiling import TileSpec

    bbox = (ORIGIN[0], ORIGIN[1] - size * RES, ORIGIN[0] + size * RES, ORIGIN[1])
    t0 = time.perf_counter()
    build_cube(
        items=items,
        out=out,
        grid=GridSpec(bbox=bbox, bbox_crs="EPSG:32643", resolution=RES, resampling="nearest"),
        tile=TileSpec(TILE),
        window_tiles=window_tiles,
        workers=workers,
        progress=False,
        reader=OdcStacReader(threads=2),
    )
    return time.perf_counter() - t0


def run_baseline(items: list, out: Path, *, size: int, workers: int) -> float:
    import dask
    import odc.stac
    from odc.geo.geobox import GeoBox
    from rasterio.transform import Affine

    from slumwatch.catalogs.readers import GDAL_HTTP_OPTIONS

    odc.stac.configure_rio(cloud_defaults=False, **GDAL_HTTP_OPTIONS)
    gb = GeoBox((size, size), Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1]), "EPSG:32643")
    t0 = time.perf_counter()
    ds = odc.stac.load(
        _annotated(items),
        bands=["image.1", "image.2", "image.3", "cloud_mask"],
        geobox=gb,
        chunks={"x": TILE, "y": TILE},
        groupby="solar_day",
        resampling="nearest",
    )
    ds = ds.rename({"image.1": "red", "image.2": "green", "image.3": "blue"})
    with dask.config.set(scheduler="threads", num_workers=workers):
        ds.to_zarr(out, mode="w", zarr_format=3, consolidated=True)
    return time.perf_counter() - t0


def throughput(work: Path, *, size: int, years: int, workers: int, repeats: int) -> dict[str, float]:
    from slumwatch.catalogs.testing import LoopbackServer

    data = work / "data"
    with LoopbackServer(root=data) as srv:
        items = _items(data, size=size, years=years, href_base=srv.url)
        ours, base = [], []
        for r in range(repeats):  # alternate to share caches and noise fairly
            out_b = work / f"base{r}.zarr"
            base.append(run_baseline(items, out_b, size=size, workers=workers))
            out_o = work / f"ours{r}.zarr"
            ours.append(run_ours(items, out_o, size=size, workers=workers))
            shutil.rmtree(out_b)
            shutil.rmtree(out_o)
    px = size * size * years
    t_ours, t_base = min(ours), min(base)
    return {
        "pixels": px,
        "ours_s": t_ours,
        "baseline_s": t_base,
        "ours_mpx_s": px / t_ours / 1e6,
        "baseline_mpx_s": px / t_base / 1e6,
        "ratio": t_base / t_ours,
    }


def _memory_child(work: Path, size: int, workers: int) -> None:
    """Child process: build a cube over the pre-generated scene (served by another process), print RSS."""
    import pystac

    data = work / f"mem{size}"
    items = [pystac.Item.from_dict(d) for d in json.loads((data / "items.json").read_text())]
    # the file server runs in its own process: its per-connection threads must not count here
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE_CODE, str(data)], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        for it in items:
            for asset in it.assets.values():
                asset.href = url + "/" + Path(asset.href).relative_to(data.resolve()).as_posix()
        before = _rss_mib()
        sampler = _PeakSampler()
        with sampler:
            seconds = run_ours(items, work / f"mem{size}.zarr", size=size, workers=workers, window_tiles=2)
    finally:
        server.terminate()
        server.wait(timeout=10)
    row = {
        "size": size,
        "peak_rss_mib": sampler.peak,
        "rss_before_build_mib": before,
        "max_rss_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": seconds,
    }
    print(json.dumps(row))


def _rss_mib() -> float:
    """Current resident set size (Linux ``/proc/self/statm``), MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakSampler:
    """Samples the current RSS every 10 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mib())
            self._stop.wait(0.01)

    def __enter__(self) -> _PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def _generate(work: Path, size: int) -> None:
    """Write one scene of ``size`` x ``size`` px and its item (local hrefs) in a throwaway process."""
    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[3]);"
        "import ingest_throughput as b; root = Path(sys.argv[1]);"
        "items = b._items(root, size=int(sys.argv[2]), years=1, href_base=None);"
        "(root / 'items.json').write_text(json.dumps([it.to_dict() for it in items]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(work / f"mem{size}"), str(size), str(Path(__file__).parent)],
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def memory(work: Path, *, sizes: list[int], workers: int) -> list[dict[str, float]]:
    rows = []
    for size in sizes:
        _generate(work, size)
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                str(size),
                "--work",
                str(work),
                "--workers",
                str(workers),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        shutil.rmtree(work / f"mem{size}", ignore_errors=True)
        shutil.rmtree(work / f"mem{size}.zarr", ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=4096, help="AOI edge (px) of the throughput run")
    parser.add_argument("--years", type=int, default=2, help="years (one scene each) of the throughput run")
    parser.add_argument("--repeats", type=int, default=2, help="repeats; the best time counts")
    parser.add_argument("--mem-sizes", default="2048,4096,8192", help="AOI edges (px) of the memory runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.memory_child is not None:
        _memory_child(args.work, args.memory_child, args.workers)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="slumwatch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        tp = throughput(work, size=args.size, years=args.years, workers=args.workers, repeats=args.repeats)
        print(
            f"throughput {args.size}x{args.size} px x {args.years} years over loopback HTTP: "
            f"build_cube {tp['ours_s']:.2f} s ({tp['ours_mpx_s']:.1f} Mpx/s) vs "
            f"odc.stac.load().to_zarr() {tp['baseline_s']:.2f} s ({tp['baseline_mpx_s']:.1f} Mpx/s): "
            f"ratio {tp['ratio']:.2f} (goal >= 0.9)"
        )
        sizes = [int(s) for s in args.mem_sizes.split(",") if s]
        rows = memory(work, sizes=sizes, workers=args.workers)
        print("peak memory of build_cube by AOI size (fresh process each):")
        for row in rows:
            area_km2 = (row["size"] * RES) ** 2 / 1e6
            print(
                f"  {row['size']:>6} px ({area_km2:6.2f} km2): "
                f"peak RSS in build {row['peak_rss_mib']:7.1f} MiB "
                f"(before build {row['rss_before_build_mib']:.1f} MiB), {row['seconds']:.1f} s"
            )
        growth = rows[-1]["peak_rss_mib"] - rows[0]["peak_rss_mib"]
        print(f"  peak RSS growth from smallest to largest AOI: {growth:+.1f} MiB (goal: flat)")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
