"""Train/val/test splits over the tile grid, with nested labelled subsets.

Tiles of the cube's tile grid (:mod:`slumwatch.catalogs.tiling`) are classed by their
labels as ``slum`` / ``mixed`` / ``non-slum`` (slum fraction of labelled pixels against
``mixed_low``/``mixed_high``); tiles with too few labelled pixels are left out. Each stratum
is shuffled with a seeded generator and cut into train/val/test, so every split sees every
stratum in proportion. To limit spatial leakage, tiles can be grouped into ``block x block``
blocks that go to one split together.

The nested labelled subsets (3 %, 10 %, 20 %, 30 % of the train tiles by default) are
prefixes of one seeded permutation per stratum, so each subset is a superset of the smaller
ones. Splits are saved as JSON with a SHA-256 of their content and a class-balance report.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slumwatch.catalogs.cube import ATTR_GRID, CubeRef, open_cube
from slumwatch.catalogs.errors import SplitError
from slumwatch.catalogs.labels import IGNORE, NON_SLUM, SLUM
from slumwatch.catalogs.tiling import TileSpec, iter_tiles

__all__ = [
    "DEFAULT_FRACTIONS",
    "STRATA",
    "SplitSpec",
    "Splits",
    "TileStats",
    "load_splits",
    "make_splits",
    "split_report",
    "tile_stats",
]

#: Tile classes used for stratification.
STRATA: tuple[str, ...] = ("slum", "mixed", "non-slum")
#: Nested labelled subsets, as fractions of the train tiles.
DEFAULT_FRACTIONS: tuple[float, ...] = (0.03, 0.10, 0.20, 0.30)
#: Split names.
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
#: JSON schema version of a splits file.
SPLITS_VERSION = 1


@dataclass(frozen=True)
class SplitSpec:
    """How to split.

    Attributes:
        train, val, test: Proportions (normalised to sum 1).
        fractions: Nested labelled subsets of train (each in (0, 1]).
        seed: Random seed.
        mixed_low: A tile with slum fraction <= this is ``non-slum``.
        mixed_high: A tile with slum fraction >= this is ``slum``; in between ``mixed``.
        min_labelled: Tiles with a smaller fraction of labelled (not 255) pixels are left out.
        block: Tiles are grouped into ``block x block`` blocks assigned to one split together.
    """

    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    seed: int = 0
    mixed_low: float = 0.02
    mixed_high: float = 0.5
    min_labelled: float = 0.25
    block: int = 1

    def __post_init__(self) -> None:
        if min(self.train, self.val, self.test) < 0 or self.train + self.val + self.test <= 0:
            raise SplitError(f"split proportions must be >= 0 with a positive sum, got {self}")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise SplitError(f"subset fractions must be in (0, 1], got {self.fractions}")
        if not 0 <= self.mixed_low < self.mixed_high <= 1:
            raise SplitError(
                f"need 0 <= mixed_low < mixed_high <= 1, got {self.mixed_low}, {self.mixed_high}"
            )
        if self.block < 1:
            raise SplitError(f"block must be >= 1, got {self.block}")


@dataclass(frozen=True)
class TileStats:
    """Label pixel counts of one tile (summed over the chosen years)."""

    tile_id: str
    row: int
    col: int
    slum: int
    non_slum: int
    ignore: int

    @property
    def labelled(self) -> int:
        """Pixels labelled 0 or 1."""
        return self.slum + self.non_slum

    @property
    def slum_fraction(self) -> float:
        """Slum share of the labelled pixels."""
        return self.slum / self.labelled if self.labelled else 0.0


@dataclass(frozen=True)
class Splits:
    """A split of the tile grid.

    Attributes:
        tile_size: Tile edge in pixels.
        years: Label years the strata were computed from.
        spec: The :class:`SplitSpec` used.
        train, val, test: Tile ids per split (sorted).
        subsets: Nested labelled subsets of train, keyed ``"3"``, ``"10"``... (percent).
        strata: Stratum of every used tile.
        stats: Per-tile label counts of the used tiles.
    """

    tile_size: int
    years: tuple[int, ...]
    spec: SplitSpec
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    subsets: Mapping[str, tuple[str, ...]] = field(hash=False)
    strata: Mapping[str, str] = field(hash=False)
    stats: Mapping[str, TileStats] = field(hash=False, compare=False, repr=False)

    def split(self, name: str) -> tuple[str, ...]:
        """Tile ids of ``train``/``val``/``test`` or of a subset (``"train_10"``)."""
        if name in SPLIT_NAMES:
            return tuple(getattr(self, name))
        if name.startswith("train_") and name[6:] in self.subsets:
            return tuple(self.subsets[name[6:]])
        raise SplitError(
            f"unknown split {name!r}; have {[*SPLIT_NAMES, *(f'train_{k}' for k in self.subsets)]}"
        )

    def content(self) -> dict[str, Any]:
        """The hashed content (everything but the report and the hash)."""
        spec = self.spec
        return {
            "version": SPLITS_VERSION,
            "tile_size": self.tile_size,
            "years": list(self.years),
            "spec": {
                "train": spec.train,
                "val": spec.val,
                "test": spec.test,
                "fractions": list(spec.fractions),
                "seed": spec.seed,
                "mixed_low": spec.mixed_low,
                "mixed_high": spec.mixed_high,
                "min_labelled": spec.min_labelled,
                "block": spec.block,
            },
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "subsets": {k: list(v) for k, v in sorted(self.subsets.items(), key=lambda kv: float(kv[0]))},
            "strata": dict(sorted(self.strata.items())),
            "stats": {k: [s.slum, s.non_slum, s.ignore] for k, s in sorted(self.stats.items())},
        }

    @property
    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`content`."""
        return _digest(self.content())

    def save(self, path: Path) -> Path:
        """Write ``{content..., "report": ..., "sha256": ...}`` as JSON."""
        payload = self.content()
        payload["report"] = split_report(self)
        payload["sha256"] = self.sha256
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
        return path


def _digest(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load_splits(path: Path) -> Splits:
    """Read a splits file and verify its hash.

    Raises:
        SplitError: unreadable file or hash mismatch (the file was edited or corrupted).
    """
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SplitError(f"cannot read splits file {path}: {err}") from err
    want = payload.pop("sha256", None)
    payload.pop("report", None)
    if want != _digest(payload):
        raise SplitError(f"splits file {path} fails its sha256 check (edited or corrupted)")
    sp = payload["spec"]
    spec = SplitSpec(
        train=sp["train"],
        val=sp["val"],
        test=sp["test"],
        fractions=tuple(sp["fractions"]),
        seed=sp["seed"],
        mixed_low=sp["mixed_low"],
        mixed_high=sp["mixed_high"],
        min_labelled=sp["min_labelled"],
        block=sp["block"],
    )
    stats = {}
    for tid, (slum, non, ign) in payload["stats"].items():
        row, col = _rc(tid)
        stats[tid] = TileStats(tile_id=tid, row=row, col=col, slum=slum, non_slum=non, ignore=ign)
    return Splits(
        tile_size=payload["tile_size"],
        years=tuple(payload["years"]),
        spec=spec,
        train=tuple(payload["train"]),
        val=tuple(payload["val"]),
        test=tuple(payload["test"]),
        subsets={k: tuple(v) for k, v in payload["subsets"].items()},
        strata=payload["strata"],
        stats=stats,
    )


def _rc(tile_id: str) -> tuple[int, int]:
    r, c = tile_id.split("_")
    return int(r[1:]), int(c[1:])


def tile_stats(
    *, cube: CubeRef, tile: TileSpec | None = None, years: Sequence[int] | None = None
) -> list[TileStats]:
    """Per-tile slum / non-slum / ignore pixel counts of the cube's ``labels`` (lazy, chunk by chunk).

    Raises:
        SplitError: the cube has no labels or none of ``years``.
    """
    ds = open_cube(cube)
    if "labels" not in ds:
        raise SplitError(f"cube {cube.path} has no labels; run rasterize_labels first")
    size = tile.size if tile is not None else int(ds.attrs[ATTR_GRID]["tile"])
    all_years = [int(y) for y in ds["time"].dt.year.values]
    chosen = list(all_years) if years is None else [y for y in years if y in all_years]
    if not chosen:
        raise SplitError(f"cube {cube.path} holds years {all_years}, none of {list(years or [])}")
    lab = ds["labels"].isel(time=[all_years.index(y) for y in chosen])
    h, w = lab.sizes["y"], lab.sizes["x"]
    counts = {}
    for value, name in ((SLUM, "slum"), (NON_SLUM, "non"), (IGNORE, "ign")):
        hit = (lab == value).sum("time")
        pad = hit.pad(y=(0, -h % size), x=(0, -w % size), constant_values=0)
        counts[name] = np.asarray(pad.coarsen(y=size, x=size).sum().values, dtype="int64")
    out = []
    for win in iter_tiles(TileSpec(size), height=h, width=w):
        out.append(
            TileStats(
                tile_id=win.tile_id,
                row=win.row,
                col=win.col,
                slum=int(counts["slum"][win.row, win.col]),
                non_slum=int(counts["non"][win.row, win.col]),
                ignore=int(counts["ign"][win.row, win.col]),
            )
        )
    return out


def _stratum(s: TileStats, spec: SplitSpec) -> str:
    frac = s.slum_fraction
    if frac >= spec.mixed_high:
        return "slum"
    if frac <= spec.mixed_low:
        return "non-slum"
    return "mixed"


def make_splits(
    *,
    cube: CubeRef | None = None,
    stats: Sequence[TileStats] | None = None,
    tile: TileSpec | None = None,
    years: Sequence[int] | None = None,
    spec: SplitSpec = SplitSpec(),
) -> Splits:
    """Stratified, seeded train/val/test split of the tile grid plus nested labelled subsets.

    Args:
        cube: Cube with ``labels`` (or give ``stats``).
        stats: Precomputed :func:`tile_stats`.
        tile: Tile grid (default: the cube's chunk tile).
        years: Label years to stratify on (default: all).
        spec: Proportions, subset fractions, seed, thresholds, blocking.

    Raises:
        SplitError: no tile has enough labelled pixels.
    """
    if stats is None:
        if cube is None:
            raise SplitError("give cube or stats")
        stats = tile_stats(cube=cube, tile=tile, years=years)
        if years is None:
            years = [int(y) for y in open_cube(cube)["time"].dt.year.values]
    size = tile.size if tile is not None else _infer_size(cube)
    used = [
        s for s in stats if s.labelled > 0 and s.labelled / max(1, s.labelled + s.ignore) >= spec.min_labelled
    ]
    if not used:
        raise SplitError(f"no tile has >= {spec.min_labelled:.0%} labelled pixels; nothing to split")
    strata = {s.tile_id: _stratum(s, spec) for s in used}
    # group tiles into blocks; a block's stratum is the most frequent of its tiles
    blocks: dict[tuple[int, int], list[TileStats]] = {}
    for s in used:
        blocks.setdefault((s.row // spec.block, s.col // spec.block), []).append(s)
    block_stratum = {}
    for key, members in blocks.items():
        kinds = [strata[m.tile_id] for m in members]
        block_stratum[key] = max(STRATA, key=lambda k: (kinds.count(k), -STRATA.index(k)))
    rng = np.random.default_rng(spec.seed)
    total = spec.train + spec.val + spec.test
    assign: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    subsets: dict[str, list[str]] = {_pct(f): [] for f in spec.fractions}
    for stratum in STRATA:
        keys = sorted(k for k, v in block_stratum.items() if v == stratum)
        if not keys:
            continue
        order = [keys[i] for i in rng.permutation(len(keys))]
        n = len(order)
        n_train = round(n * spec.train / total)
        n_val = round(n * spec.val / total)
        if spec.train > 0 and n_train == 0:
            n_train = 1
        n_val = min(n_val, n - n_train)
        parts = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        for name, part in parts.items():
            assign[name].extend(t.tile_id for key in part for t in blocks[key])
        train_tiles = [
            t.tile_id for key in parts["train"] for t in sorted(blocks[key], key=lambda s: s.tile_id)
        ]
        perm = [train_tiles[i] for i in rng.permutation(len(train_tiles))]
        for f in spec.fractions:
            k = min(len(perm), max(1, math.ceil(f * len(perm)))) if perm else 0
            subsets[_pct(f)].extend(perm[:k])
    return Splits(
        tile_size=size,
        years=tuple(int(y) for y in (years or ())),
        spec=spec,
        train=tuple(sorted(assign["train"])),
        val=tuple(sorted(assign["val"])),
        test=tuple(sorted(assign["test"])),
        subsets={k: tuple(sorted(v)) for k, v in subsets.items()},
        strata=strata,
        stats={s.tile_id: s for s in used},
    )


def _infer_size(cube: CubeRef | None) -> int:
    if cube is None:
        raise SplitError("give tile when splitting precomputed stats")
    return int(open_cube(cube).attrs[ATTR_GRID]["tile"])


def _pct(f: float) -> str:
    return f"{f * 100:g}"


def split_report(splits: Splits) -> dict[str, Any]:
    """Class balance per split and subset: tiles per stratum, slum/non-slum pixels, slum fraction."""
    report: dict[str, Any] = {}
    names = [*SPLIT_NAMES, *(f"train_{k}" for k in splits.subsets)]
    for name in names:
        ids = splits.split(name)
        slum = sum(splits.stats[t].slum for t in ids)
        non = sum(splits.stats[t].non_slum for t in ids)
        report[name] = {
            "tiles": len(ids),
            "strata": {k: sum(1 for t in ids if splits.strata[t] == k) for k in STRATA},
            "slum_pixels": slum,
            "non_slum_pixels": non,
            "slum_fraction": round(slum / (slum + non), 6) if slum + non else 0.0,
        }
    return report


def format_report(splits: Splits) -> str:
    """The class-balance report as a Markdown table."""
    rows = ["| split | tiles | slum | mixed | non-slum | slum px fraction |", "|---|---|---|---|---|---|"]
    for name, r in split_report(splits).items():
        k = r["strata"]
        counts = f"{k['slum']} | {k['mixed']} | {k['non-slum']}"
        rows.append(f"| {name} | {r['tiles']} | {counts} | {r['slum_fraction']:.3f} |")
    return "\n".join(rows)
