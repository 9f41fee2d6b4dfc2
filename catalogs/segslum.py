"""SegSlum dataset layout: export a cube's tiles, and read such a folder back.

Layout::

    ROOT/
      image/<id>.png        RGB uint8 tile (uint16 imagery is stretched with band percentiles)
      label/<id>.tif        uint8 GeoTIFF: 1 slum, 0 non-slum, 255 ignore (georeferenced)
      train.txt val.txt test.txt [train_3.txt train_10.txt ...]   one id per line
      segslum.json          provenance: cube, years, tile size, stretch, splits sha256

Ids are ``<year>_<tile_id>`` (e.g. ``2019_r00003_c00007``), so they survive a re-export.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slumwatch.catalogs.cube import ATTR_GRID, CubeRef, band_statistics, open_cube
from slumwatch.catalogs.errors import CatalogError
from slumwatch.catalogs.labels import IGNORE
from slumwatch.catalogs.splits import Splits
from slumwatch.catalogs.tiling import TileSpec, iter_tiles

__all__ = ["RGB", "SegSlumIndex", "export_segslum", "load_sample", "read_segslum"]

#: Bands written to the PNGs, in order.
RGB: tuple[str, str, str] = ("red", "green", "blue")
#: Manifest file name.
MANIFEST = "segslum.json"
_ID = re.compile(r"^(\d{4})_(r\d{5}_c\d{5})$")


class SegSlumError(CatalogError):
    """A SegSlum folder is incomplete or inconsistent."""


@dataclass(frozen=True)
class SegSlumIndex:
    """A SegSlum folder: id lists and the paths of every sample."""

    root: Path
    lists: Mapping[str, tuple[str, ...]]

    def image_path(self, sample_id: str) -> Path:
        """``image/<id>.png``."""
        return self.root / "image" / f"{sample_id}.png"

    def label_path(self, sample_id: str) -> Path:
        """``label/<id>.tif``."""
        return self.root / "label" / f"{sample_id}.tif"


def _stretch(block: np.ndarray, lohi: Sequence[tuple[float, float]]) -> np.ndarray:
    out = np.empty(block.shape, dtype="uint8")
    for b, (lo, hi) in enumerate(lohi):
        scale = 255.0 / max(hi - lo, 1e-6)
        out[b] = np.clip((block[b].astype("float32") - lo) * scale, 0, 255).astype("uint8")
    return out


def export_segslum(
    *, cube: CubeRef, splits: Splits, out: Path, years: Sequence[int] | None = None
) -> SegSlumIndex:
    """Write the split tiles of ``cube`` in SegSlum layout.

    Args:
        cube: A cube with ``labels``.
        splits: Tile splits (their tile grid is laid over the cube grid from its origin).
        out: Output folder.
        years: Years to export (default: the splits' years, else all).

    Raises:
        SegSlumError: the cube has no labels or lacks red/green/blue.
    """
    import rasterio
    from PIL import Image
    from rasterio.transform import Affine

    ds = open_cube(cube)
    if "labels" not in ds:
        raise SegSlumError(f"cube {cube.path} has no labels")
    bands = [str(b) for b in ds["band"].values]
    missing = [b for b in RGB if b not in bands]
    if missing:
        raise SegSlumError(f"cube {cube.path} lacks bands {missing} (has {bands})")
    grid = ds.attrs[ATTR_GRID]
    transform = Affine(*grid["transform"])
    all_years = [int(y) for y in ds["time"].dt.year.values]
    chosen = list(years or splits.years or all_years)
    idx = [bands.index(b) for b in RGB]
    stretch: list[tuple[float, float]] | None = None
    if ds["imagery"].dtype != np.uint8:
        stats = band_statistics(ds)
        stretch = [stats[b] for b in RGB]
    out = Path(out)
    (out / "image").mkdir(parents=True, exist_ok=True)
    (out / "label").mkdir(parents=True, exist_ok=True)
    wanted = set(splits.train) | set(splits.val) | set(splits.test)
    h, w = ds.sizes["y"], ds.sizes["x"]
    for win in iter_tiles(TileSpec(splits.tile_size), height=h, width=w):
        if win.tile_id not in wanted:
            continue
        rows, cols = win.core_slices
        for year in chosen:
            if year not in all_years:
                continue
            t = all_years.index(year)
            sid = f"{year}_{win.tile_id}"
            img = np.asarray(ds["imagery"][t, idx, rows, cols].values)
            rgb = img.astype("uint8") if stretch is None else _stretch(img, stretch)
            Image.fromarray(np.moveaxis(rgb, 0, -1), mode="RGB").save(out / "image" / f"{sid}.png")
            lab = np.asarray(ds["labels"][t, rows, cols].values, dtype="uint8")
            profile = {
                "driver": "GTiff",
                "height": lab.shape[0],
                "width": lab.shape[1],
                "count": 1,
                "dtype": "uint8",
                "crs": grid["crs"],
                "transform": transform @ Affine.translation(cols.start, rows.start),
                "nodata": IGNORE,
                "compress": "deflate",
            }
            with rasterio.open(out / "label" / f"{sid}.tif", "w", **profile) as dst:
                dst.write(lab, 1)
    lists: dict[str, tuple[str, ...]] = {}
    names = ["train", "val", "test", *(f"train_{k}" for k in splits.subsets)]
    for name in names:
        ids = tuple(f"{y}_{tid}" for y in chosen if y in all_years for tid in splits.split(name))
        lists[name] = ids
        (out / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    manifest: dict[str, Any] = {
        "cube": str(cube.path),
        "years": [y for y in chosen if y in all_years],
        "tile_size": splits.tile_size,
        "stretch": {b: list(v) for b, v in zip(RGB, stretch, strict=True)} if stretch else None,
        "splits_sha256": splits.sha256,
        "lists": sorted(lists),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    return SegSlumIndex(root=out, lists=lists)


def read_segslum(root: Path, *, check: bool = True) -> SegSlumIndex:
    """Read a SegSlum folder's id lists (``*.txt``) and check every listed sample exists.

    Raises:
        SegSlumError: no id list, a malformed id, or a missing image/label.
    """
    root = Path(root)
    lists: dict[str, tuple[str, ...]] = {}
    for f in sorted(root.glob("*.txt")):
        ids = tuple(line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip())
        lists[f.stem] = ids
    if not lists:
        raise SegSlumError(f"{root} holds no id list (train.txt, val.txt, test.txt)")
    index = SegSlumIndex(root=root, lists=lists)
    if check:
        problems = []
        for name, ids in lists.items():
            for sid in ids:
                if not index.image_path(sid).exists():
                    problems.append(f"{name}: missing image/{sid}.png")
                if not index.label_path(sid).exists():
                    problems.append(f"{name}: missing label/{sid}.tif")
        if problems:
            raise SegSlumError(
                f"SegSlum folder {root} is incomplete: {problems[:5]} ({len(problems)} problems)"
            )
    return index


def load_sample(index: SegSlumIndex, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
    """``(image (3, H, W) uint8, label (H, W) uint8)`` of one sample.

    Raises:
        SegSlumError: image and label shapes differ.
    """
    import rasterio
    from PIL import Image

    with Image.open(index.image_path(sample_id)) as im:
        image = np.moveaxis(np.asarray(im.convert("RGB")), -1, 0)
    with rasterio.open(index.label_path(sample_id)) as src:
        label = src.read(1)
    if image.shape[1:] != label.shape:
        raise SegSlumError(f"sample {sample_id}: image {image.shape[1:]} and label {label.shape} differ")
    return image, label


def parse_id(sample_id: str) -> tuple[int, str]:
    """``"2019_r00003_c00007"`` -> ``(2019, "r00003_c00007")``."""
    m = _ID.match(sample_id)
    if not m:
        raise SegSlumError(f"malformed SegSlum id {sample_id!r} (want <year>_r#####_c#####)")
    return int(m.group(1)), m.group(2)
