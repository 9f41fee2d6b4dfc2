"""Train any segmentation method (supervised or semi-supervised) on cube tiles of a split's label budget.

:func:`train_method_from_cube` is the one entry point the flows and the CLI call:

* labelled tiles: the budget's nested subset of the split's train tiles (``splits.subsets["10"]`` for a
  10 % budget), in every chosen year where enough of the tile is labelled and valid;
* unlabeled tiles: all other train tiles (every chosen year with data), wrapped in
  :class:`~slumwatch.models.methods.augment.UnlabeledViews` in the method's view mode;
* validation tiles: the val split (enables ``best.pt`` by validation mIoU);
* input scaling: the cube's per-band percentile stretch
  (:func:`slumwatch.actors.segmentation.cube_band_scaling`), stored in the checkpoint.

Supervised, FixMatch, UniMatch, SLUM-i and UniMatch V2 (+ SLUM-i) run through
:mod:`slumwatch.actors.training` (Ray Train when ``distributed``, else in-process); ST and ST++ through
:func:`slumwatch.actors.self_training.run_self_training` (in-process, or as one Ray task when
``distributed``). Datasets are built by :class:`MethodDatasets`, a picklable builder of tile refs (paths and
plain values): every Ray worker reads the cube itself.

Several cubes (cities) can train one model: give one splits file per cube; tiles are pooled and the band
scaling is the mean of the cubes' stretches (one normalisation per checkpoint).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slumwatch.actors.cube_tiles import (
    CubeInfo,
    CubeTileSequence,
    TileRef,
    cube_info,
    materialize,
    plan_tile_refs,
    valid_from_label,
)
from slumwatch.actors.tiles import BandScaling
from slumwatch.catalogs.splits import Splits, load_splits
from slumwatch.catalogs.tiling import TileSpec
from slumwatch.models.augment import DEFAULT_SCALE_RANGE, AugmentConfig
from slumwatch.models.engine import BEST_NAME, LATEST_NAME, TrainConfig, derive_seed

__all__ = [
    "NUM_CLASSES",
    "SELF_TRAINING_METHODS",
    "SUPPORTED_METHODS",
    "VIEW_MODES",
    "DataOptions",
    "MethodDatasets",
    "MethodRunResult",
    "MethodTrainingError",
    "budget_key",
    "budget_tiles",
    "train_method_from_cube",
]

LOGGER = logging.getLogger(__name__)

NUM_CLASSES = 2
VIEW_MODES: Mapping[str, str | None] = {
    "supervised": None,
    "fixmatch": "fixmatch",
    "unimatch": "unimatch",
    "slum-i": "unimatch",
    "unimatch-v2": "unimatch_v2",
    "unimatch-v2-slum-i": "unimatch_v2",
}
"""Methods trained by the engine through ``actors.training``, with their ``UnlabeledViews`` mode."""
SELF_TRAINING_METHODS: Mapping[str, bool] = {"st": False, "st++": True}
"""Multi-stage self-training methods and their ``plus`` flag."""
SUPPORTED_METHODS: tuple[str, ...] = (*VIEW_MODES, *SELF_TRAINING_METHODS)
FULL_BUDGET = 1.0
DEFAULT_CROP = 256
DEFAULT_MIN_LABELLED = 0.05
DEFAULT_MIN_VALID = 0.05
PRELOAD_MAX_BYTES = 2 * 1024**3
"""Tile sets up to this size (per worker) are read into memory once; larger ones are read tile by tile."""
SEED_LABELLED, SEED_UNLABELED, SEED_VIEWS = 1, 2, 3
MIN_STABILITY_EPOCHS = 2
SELF_TRAINING_OPTION_NAMES = ("use_gram", "reliable_fraction", "tta_scales", "tta_flip", "label_batch_size")


class MethodTrainingError(ValueError):
    """A training run was asked for with inconsistent inputs (method, budget, splits, cubes)."""


@dataclass(frozen=True)
class DataOptions:
    """How cube tiles become training samples.

    Attributes:
        crop_size: Random training crop (pixels) after the random rescale; ``None`` trains on whole tiles.
        scale_range: Random rescale range of the weak augmentation (SegSlum/ST++: 0.5-2.0).
        years: Years whose tiles are used (default: the splits' years present in the cube).
        tile_size: Tile edge (default: the splits' tile size).
        min_labelled_fraction: A labelled/validation tile-year needs this share of labelled valid pixels.
        min_valid_fraction: An unlabeled tile-year needs this share of pixels with data.
        preload_max_bytes: Read tile sets into memory up to this size, else lazily from the cube.
    """

    crop_size: int | None = DEFAULT_CROP
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE
    years: tuple[int, ...] | None = None
    tile_size: int | None = None
    min_labelled_fraction: float = DEFAULT_MIN_LABELLED
    min_valid_fraction: float = DEFAULT_MIN_VALID
    preload_max_bytes: int = PRELOAD_MAX_BYTES

    def __post_init__(self) -> None:
        if self.crop_size is not None and self.crop_size < 1:
            raise MethodTrainingError(f"crop_size must be >= 1, got {self.crop_size}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise MethodTrainingError(f"scale_range must be 0 < low <= high, got {self.scale_range}")
        for name in ("min_labelled_fraction", "min_valid_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise MethodTrainingError(f"{name} must be in [0, 1], got {value}")

    def augment(self) -> AugmentConfig:
        """The weak augmentation of training tiles."""
        return AugmentConfig(crop_size=self.crop_size, scale_range=self.scale_range)


def _repeat(refs: tuple[TileRef, ...], minimum: int) -> tuple[TileRef, ...]:
    """``refs`` repeated until there are at least ``minimum`` (drop_last loaders need full batches)."""
    if not refs or len(refs) >= minimum:
        return refs
    return refs * math.ceil(minimum / len(refs))


def _tiles(refs: tuple[TileRef, ...], kind: str, max_bytes: int) -> Any:
    """A lazy tile sequence, materialised when it fits ``max_bytes``."""
    seq = CubeTileSequence(refs, kind)  # type: ignore[arg-type]
    unique = len(set(refs))
    if seq.nbytes_estimate() * unique / max(1, len(refs)) <= max_bytes:
        return materialize(seq)
    return seq


@dataclass(frozen=True)
class MethodDatasets:
    """Picklable dataset builder (``dataset_builder`` of :mod:`slumwatch.actors.training`).

    Returns :class:`~slumwatch.actors.training.TrainDatasets`: labelled tiles (weakly augmented), the
    unlabeled tiles wrapped in ``UnlabeledViews(mode=view_mode)`` (pixels without data are ignored), and
    the validation tiles (whole tiles, no augmentation). Raw tiles are scaled by ``low``/``high``.
    """

    labelled: tuple[TileRef, ...]
    unlabeled: tuple[TileRef, ...]
    val: tuple[TileRef, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    augment: AugmentConfig
    view_mode: str | None
    seed: int = 0
    min_samples: int = 1
    preload_max_bytes: int = PRELOAD_MAX_BYTES

    def __call__(self) -> Any:
        from slumwatch.actors.training import TrainDatasets
        from slumwatch.models.data import TileDataset
        from slumwatch.models.methods.augment import UnlabeledViews

        labelled = _repeat(self.labelled, self.min_samples)
        train = TileDataset(
            _tiles(labelled, "image", self.preload_max_bytes),
            _tiles(labelled, "label", self.preload_max_bytes),
            low=self.low,
            high=self.high,
            augment=self.augment,
            seed=derive_seed(self.seed, SEED_LABELLED),
        )
        val = None
        if self.val:
            val = TileDataset(
                _tiles(self.val, "image", self.preload_max_bytes),
                _tiles(self.val, "label", self.preload_max_bytes),
                low=self.low,
                high=self.high,
            )
        unlabeled = None
        if self.view_mode is not None:
            refs = _repeat(self.unlabeled, self.min_samples)
            tiles = TileDataset(
                _tiles(refs, "image", self.preload_max_bytes),
                _tiles(refs, "valid", self.preload_max_bytes),
                low=self.low,
                high=self.high,
                augment=self.augment,
                seed=derive_seed(self.seed, SEED_UNLABELED),
                transform=valid_from_label,
            )
            unlabeled = UnlabeledViews(
                tiles,
                seed=derive_seed(self.seed, SEED_VIEWS),
                mode=self.view_mode,  # type: ignore[arg-type]
            )
        return TrainDatasets(train=train, val=val, unlabeled=unlabeled)


@dataclass(frozen=True)
class MethodRunResult:
    """Outcome of :func:`train_method_from_cube`.

    Attributes:
        checkpoint: The model to use: ``best.pt`` (validation mIoU) when there was validation, else the
            final ``latest.pt``.
        training: The engine summary (``TrainResult.to_dict()``) or, for ST/ST++, the stage summaries.
        samples: Tile-year counts: ``labelled``, ``unlabeled``, ``val``.
        cubes: :meth:`CubeInfo.to_dict` of every training cube, with the years used.
    """

    method: str
    model_name: str
    budget: float
    checkpoint: Path
    run_dir: Path
    best_miou: float | None
    split_sha256: str
    years: tuple[int, ...]
    samples: Mapping[str, int]
    normalization: Mapping[str, Any]
    train_config: Mapping[str, Any]
    method_kwargs: Mapping[str, Any]
    model_kwargs: Mapping[str, Any]
    cubes: tuple[Mapping[str, Any], ...]
    training: Mapping[str, Any]
    wall_time_s: float
    distributed: bool
    num_workers: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "method": self.method,
            "model_name": self.model_name,
            "budget": self.budget,
            "checkpoint": str(self.checkpoint),
            "run_dir": str(self.run_dir),
            "best_miou": self.best_miou,
            "split_sha256": self.split_sha256,
            "years": list(self.years),
            "samples": dict(self.samples),
            "normalization": dict(self.normalization),
            "train_config": dict(self.train_config),
            "method_kwargs": dict(self.method_kwargs),
            "model_kwargs": dict(self.model_kwargs),
            "cubes": [dict(c) for c in self.cubes],
            "training": dict(self.training),
            "wall_time_s": self.wall_time_s,
            "distributed": self.distributed,
            "num_workers": self.num_workers,
        }


def budget_key(budget: float) -> str:
    """The splits' subset key of a label budget (``0.03`` -> ``"3"``, as ``catalogs.splits`` names them)."""
    return f"{budget * 100:g}"


def budget_tiles(splits: Splits, budget: float) -> tuple[str, ...]:
    """Tile ids of the nested labelled subset for ``budget`` (``1.0``: the whole train split).

    Raises:
        MethodTrainingError: the splits hold no subset for this budget.
    """
    if not 0 < budget <= FULL_BUDGET:
        raise MethodTrainingError(f"label budget must be in (0, 1], got {budget}")
    key = budget_key(budget)
    if key in splits.subsets:
        return tuple(splits.subsets[key])
    if budget == FULL_BUDGET:
        return tuple(splits.train)
    have = ", ".join(f"{float(k) / 100:g}" for k in sorted(splits.subsets, key=float))
    raise MethodTrainingError(
        f"the splits have no {budget:g} label budget (subsets: {have}); make splits with "
        f"SplitSpec(fractions=...) that include {budget:g}"
    )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str | Path | Splits):
        return [value]
    return list(value)


def _load(splits: Path | Splits) -> Splits:
    return splits if isinstance(splits, Splits) else load_splits(Path(splits))


def _split_hash(splits: Sequence[Splits]) -> str:
    if len(splits) == 1:
        return splits[0].sha256
    return hashlib.sha256("+".join(s.sha256 for s in splits).encode()).hexdigest()


def _combined_scaling(cubes: Sequence[Path]) -> BandScaling:
    """The cube's band stretch; for several cubes the mean of their lows and highs."""
    from slumwatch.actors.segmentation import cube_band_scaling

    scalings = [cube_band_scaling(c) for c in cubes]
    first = scalings[0]
    for cube, other in zip(cubes[1:], scalings[1:], strict=True):
        if other.bands != first.bands:
            raise MethodTrainingError(f"cube {cube} has bands {other.bands}, the first cube {first.bands}")
    if len(scalings) == 1:
        return first
    low = tuple(float(np.mean([s.low[i] for s in scalings])) for i in range(len(first.bands)))
    high = tuple(float(np.mean([s.high[i] for s in scalings])) for i in range(len(first.bands)))
    return BandScaling(bands=first.bands, low=low, high=high)


@dataclass(frozen=True)
class _Plan:
    labelled: tuple[TileRef, ...]
    unlabeled: tuple[TileRef, ...]
    val: tuple[TileRef, ...]
    years: tuple[int, ...]
    infos: tuple[CubeInfo, ...]
    cube_years: tuple[tuple[int, ...], ...]


def _plan(
    *, cubes: Sequence[Path], splits: Sequence[Splits], budget: float, data: DataOptions, unlabeled: bool
) -> _Plan:
    labelled: list[TileRef] = []
    pool: list[TileRef] = []
    val: list[TileRef] = []
    infos: list[CubeInfo] = []
    used_years: list[tuple[int, ...]] = []
    for cube, split in zip(cubes, splits, strict=True):
        info = cube_info(cube)
        if not info.has_labels:
            raise MethodTrainingError(f"cube {cube} has no labels; run rasterize_labels on it first")
        spec = TileSpec(data.tile_size or split.tile_size)
        wanted = data.years or split.years or info.years
        years = tuple(y for y in wanted if y in info.years)
        if not years:
            raise MethodTrainingError(f"cube {cube} holds years {list(info.years)}, none of {list(wanted)}")
        chosen = budget_tiles(split, budget)
        labelled += plan_tile_refs(
            cube=cube,
            tile_ids=chosen,
            years=years,
            spec=spec,
            require="labels",
            min_fraction=data.min_labelled_fraction,
        )
        val += plan_tile_refs(
            cube=cube,
            tile_ids=split.val,
            years=years,
            spec=spec,
            require="labels",
            min_fraction=data.min_labelled_fraction,
        )
        if unlabeled:
            rest = sorted(set(split.train) - set(chosen))
            pool += plan_tile_refs(
                cube=cube,
                tile_ids=rest,
                years=years,
                spec=spec,
                require="valid",
                min_fraction=data.min_valid_fraction,
            )
        infos.append(info)
        used_years.append(years)
    if not labelled:
        raise MethodTrainingError(
            f"no labelled tile-year with >= {data.min_labelled_fraction:.0%} labelled valid pixels in the "
            f"{budget:g} budget of {[str(c) for c in cubes]}"
        )
    if unlabeled and not pool:
        raise MethodTrainingError(
            f"the method needs unlabeled tiles but the train split outside the {budget:g} budget has none"
        )
    all_years = tuple(sorted({y for ys in used_years for y in ys}))
    return _Plan(
        labelled=tuple(labelled),
        unlabeled=tuple(pool),
        val=tuple(val),
        years=all_years,
        infos=tuple(infos),
        cube_years=tuple(used_years),
    )


def _checkpoint(run_dir: Path) -> Path:
    for name in (BEST_NAME, LATEST_NAME):
        if (run_dir / name).is_file():
            return run_dir / name
    raise FileNotFoundError(f"training finished without a checkpoint in {run_dir}")


def _self_training_options(method_kwargs: Mapping[str, Any], augment: AugmentConfig) -> Any:
    from slumwatch.actors.self_training import SelfTrainingOptions

    unknown = sorted(set(method_kwargs) - set(SELF_TRAINING_OPTION_NAMES))
    if unknown:
        raise MethodTrainingError(
            f"ST/ST++ options {unknown} are unknown; accepted: {', '.join(SELF_TRAINING_OPTION_NAMES)}"
        )
    kwargs = dict(method_kwargs)
    if "tta_scales" in kwargs:
        kwargs["tta_scales"] = tuple(float(s) for s in kwargs["tta_scales"])
    return SelfTrainingOptions(augment=augment, **kwargs)


def _run_self_training(
    *,
    plus: bool,
    out_dir: Path,
    plan: _Plan,
    scaling: BandScaling,
    model_name: str,
    model_kwargs: Mapping[str, Any],
    train_config: TrainConfig,
    options: Any,
    preload_max_bytes: int,
    metadata: Mapping[str, Any],
    split_hash: str,
) -> dict[str, Any]:
    """Build :class:`SelfTrainingData` from tile refs and run ST / ST++ here (module level: Ray-picklable)."""
    from slumwatch.actors.self_training import ModelSpec, SelfTrainingData, run_self_training

    kwargs = dict(model_kwargs)
    num_classes = int(kwargs.pop("num_classes", NUM_CLASSES))
    in_channels = int(kwargs.pop("in_channels", len(scaling.bands)))
    weights = kwargs.pop("weights", None)
    data = SelfTrainingData(
        labeled_images=_tiles(plan.labelled, "image", preload_max_bytes),
        labeled_labels=_tiles(plan.labelled, "label", preload_max_bytes),
        unlabeled_images=_tiles(plan.unlabeled, "image", preload_max_bytes),
        val_images=_tiles(plan.val, "image", preload_max_bytes) if plan.val else None,
        val_labels=_tiles(plan.val, "label", preload_max_bytes) if plan.val else None,
        low=scaling.low,
        high=scaling.high,
        unlabeled_ids=[f"{Path(r.cube).name}/{r.name}" for r in plan.unlabeled],
        unlabeled_valid=_tiles(plan.unlabeled, "valid", preload_max_bytes),
    )
    result = run_self_training(
        plus=plus,
        out_dir=out_dir,
        data=data,
        model=ModelSpec(
            name=model_name,
            num_classes=num_classes,
            in_channels=in_channels,
            weights=None if weights is None else Path(weights),
            kwargs=kwargs,
        ),
        train=train_config,
        options=options,
        normalization=scaling.to_dict(),
        metadata=metadata,
        split_hash=split_hash,
    )
    return {
        "final_checkpoint": str(result.final_checkpoint),
        "stages": {str(k): dict(v) for k, v in result.stages.items()},
        "pseudo_label_store": str(result.pseudo_label_store),
        "versions": list(result.versions),
        "reliable": len(result.reliable),
        "unreliable": len(result.unreliable),
    }


def _check_stability_epochs(*, labelled: int, config: TrainConfig) -> None:
    """ST++ ranks tiles by stability across stage-1 checkpoints: stage 1 must last at least two epochs.

    Raises:
        MethodTrainingError: ``max_iters`` (or ``epochs``) leaves stage 1 a single epoch.
    """
    per_epoch = labelled // config.batch_size if labelled >= config.batch_size else 1
    total = config.max_iters if config.max_iters is not None else math.inf
    if config.epochs is not None:
        total = min(total, config.epochs * per_epoch)
    if math.ceil(total / per_epoch) < MIN_STABILITY_EPOCHS:
        raise MethodTrainingError(
            f"ST++ needs >= {MIN_STABILITY_EPOCHS} stage-1 epochs for its stability ranking; with {labelled} "
            f"labelled tile-years at batch {config.batch_size} an epoch is {per_epoch} iterations: set "
            f"max_iters >= {MIN_STABILITY_EPOCHS * per_epoch} and epochs >= {MIN_STABILITY_EPOCHS}"
        )


def _self_training(
    *,
    method: str,
    run_dir: Path,
    plan: _Plan,
    scaling: BandScaling,
    model_name: str,
    model_kwargs: Mapping[str, Any],
    train_config: TrainConfig,
    method_kwargs: Mapping[str, Any],
    data: DataOptions,
    distributed: bool,
    use_gpu: bool,
    metadata: Mapping[str, Any],
    split_hash: str,
) -> tuple[Path, dict[str, Any], float | None]:
    options = _self_training_options(method_kwargs, data.augment())
    if SELF_TRAINING_METHODS[method]:
        _check_stability_epochs(labelled=len(plan.labelled), config=train_config)
    kwargs: dict[str, Any] = {
        "plus": SELF_TRAINING_METHODS[method],
        "out_dir": run_dir,
        "plan": plan,
        "scaling": scaling,
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs),
        "train_config": train_config,
        "options": options,
        "preload_max_bytes": data.preload_max_bytes,
        "metadata": dict(metadata),
        "split_hash": split_hash,
    }
    if distributed:
        import ray

        from slumwatch.actors.cluster import ray_cluster

        with ray_cluster():
            remote = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0)(_run_self_training)  # type: ignore[arg-type]
            summary: dict[str, Any] = ray.get(remote.remote(**kwargs))
    else:
        summary = _run_self_training(**kwargs)
    final = Path(summary["final_checkpoint"])
    stages = summary["stages"]
    last = stages[max(stages, key=int)] if stages else {}
    return final, summary, last.get("best_miou")


def _engine_training(
    *,
    method: str,
    run_dir: Path,
    plan: _Plan,
    scaling: BandScaling,
    model_name: str,
    model_kwargs: Mapping[str, Any],
    train_config: TrainConfig,
    method_kwargs: Mapping[str, Any],
    data: DataOptions,
    distributed: bool,
    num_workers: int,
    use_gpu: bool,
    metadata: Mapping[str, Any],
    split_hash: str,
    progress: bool,
) -> tuple[Path, dict[str, Any], float | None]:
    from slumwatch.actors.training import train_distributed, train_local

    workers = num_workers if distributed else 1
    builder = MethodDatasets(
        labelled=plan.labelled,
        unlabeled=plan.unlabeled,
        val=plan.val,
        low=scaling.low,
        high=scaling.high,
        augment=data.augment(),
        view_mode=VIEW_MODES[method],
        seed=train_config.seed,
        min_samples=train_config.batch_size * workers,
        preload_max_bytes=data.preload_max_bytes,
    )
    common: dict[str, Any] = {
        "config": train_config,
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs),
        "method_name": method,
        "method_kwargs": dict(method_kwargs),
        "dataset_builder": builder,
        "run_dir": run_dir,
        "normalization": scaling.to_dict(),
        "metadata": metadata,
        "split_hash": split_hash,
    }
    if distributed:
        from slumwatch.actors.cluster import ray_cluster

        with ray_cluster():
            result = train_distributed(**common, num_workers=num_workers, use_gpu=use_gpu)
    else:
        result = train_local(**common, progress=progress)
    return _checkpoint(Path(result.run_dir)), result.to_dict(), result.best_miou


def train_method_from_cube(
    *,
    cube: Path | Sequence[Path],
    splits: Path | Splits | Sequence[Path | Splits],
    method: str,
    budget: float,
    model_name: str,
    train_config: TrainConfig,
    run_dir: Path,
    num_workers: int = 1,
    use_gpu: bool = False,
    method_kwargs: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    distributed: bool = True,
    data: DataOptions | None = None,
    progress: bool = False,
) -> MethodRunResult:
    """Train ``method`` on the ``budget`` labels of ``splits`` over ``cube`` (see the module docstring).

    Args:
        cube: One cube store, or several (one model over several cities).
        splits: The splits of each cube (a splits JSON path or :class:`Splits`), in the order of ``cube``.
        method: One of :data:`SUPPORTED_METHODS`.
        budget: Label budget as a fraction of the train tiles (a subset of the splits, e.g. 0.03, 0.1).
        model_name: Registered network (``deeplabv3plus_resnet18``, ``deeplabv3plus_resnet101``, ...).
        train_config: Engine settings (epochs or max_iters, batch size per worker, lr, ...); for ST/ST++
            the settings of every training stage.
        run_dir: Output folder; an existing run resumes from its ``latest.pt``.
        num_workers: Ray Train workers (DDP) when ``distributed``; ST/ST++ always use one.
        use_gpu: One GPU per worker (Ray).
        method_kwargs: Overrides of the method's config (``threshold=0.9``...); for ST/ST++ the
            :class:`~slumwatch.actors.self_training.SelfTrainingOptions` fields ``use_gram``,
            ``reliable_fraction``, ``tta_scales``, ``tta_flip``, ``label_batch_size``.
        model_kwargs: Extra network kwargs (``weights=<local .pth>``...); classes and bands are set here.
        distributed: Run on Ray (Ray Train for engine methods, a Ray task for ST/ST++); else in-process.
        data: Crop, rescale range, years, tile filters.
        progress: tqdm bars (in-process runs).

    Raises:
        MethodTrainingError: unknown method, budget missing from the splits, mismatched cubes/splits, no
            labelled (or, for semi-supervised methods, no unlabeled) tiles.
    """
    if method not in SUPPORTED_METHODS:
        raise MethodTrainingError(f"unknown method {method!r}; supported: {', '.join(SUPPORTED_METHODS)}")
    if num_workers < 1:
        raise MethodTrainingError(f"num_workers must be >= 1, got {num_workers}")
    data = data or DataOptions()
    cubes = [Path(c) for c in _as_list(cube)]
    loaded = [_load(s) for s in _as_list(splits)]
    if len(cubes) != len(loaded) or not cubes:
        raise MethodTrainingError(f"give one splits per cube: {len(cubes)} cubes, {len(loaded)} splits")
    start = time.perf_counter()
    is_self_training = method in SELF_TRAINING_METHODS
    needs_unlabeled = is_self_training or VIEW_MODES.get(method) is not None
    plan = _plan(cubes=cubes, splits=loaded, budget=budget, data=data, unlabeled=needs_unlabeled)
    scaling = _combined_scaling(cubes)
    split_hash = _split_hash(loaded)
    model_kw = {"num_classes": NUM_CLASSES, "in_channels": len(scaling.bands), **dict(model_kwargs or {})}
    method_kw = dict(method_kwargs or {})
    cubes_meta = tuple(
        {**info.to_dict(), "years_used": list(years)}
        for info, years in zip(plan.infos, plan.cube_years, strict=True)
    )
    samples = {"labelled": len(plan.labelled), "unlabeled": len(plan.unlabeled), "val": len(plan.val)}
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    LOGGER.info("training %s at %g labels on %s: %s", method, budget, [str(c) for c in cubes], samples)
    metadata = {
        "label_budget": budget,
        "cubes": [str(c) for c in cubes],
        "cities": [info.city for info in plan.infos],
        "years": list(plan.years),
        "samples": samples,
        "crop_size": data.crop_size,
    }
    if is_self_training:
        if distributed and num_workers > 1:
            LOGGER.warning("%s runs on one worker; num_workers=%d is ignored", method, num_workers)
        checkpoint, training, best = _self_training(
            method=method,
            run_dir=run_dir,
            plan=plan,
            scaling=scaling,
            model_name=model_name,
            model_kwargs=model_kw,
            train_config=train_config,
            method_kwargs=method_kw,
            data=data,
            distributed=distributed,
            use_gpu=use_gpu,
            metadata=metadata,
            split_hash=split_hash,
        )
    else:
        checkpoint, training, best = _engine_training(
            method=method,
            run_dir=run_dir,
            plan=plan,
            scaling=scaling,
            model_name=model_name,
            model_kwargs=model_kw,
            train_config=train_config,
            method_kwargs=method_kw,
            data=data,
            distributed=distributed,
            num_workers=num_workers,
            use_gpu=use_gpu,
            metadata=metadata,
            split_hash=split_hash,
            progress=progress,
        )
    return MethodRunResult(
        method=method,
        model_name=model_name,
        budget=budget,
        checkpoint=checkpoint,
        run_dir=run_dir,
        best_miou=best,
        split_sha256=split_hash,
        years=plan.years,
        samples=samples,
        normalization=scaling.to_dict(),
        train_config=train_config.to_dict(),
        method_kwargs=method_kw,
        model_kwargs={k: str(v) if isinstance(v, Path) else v for k, v in model_kw.items()},
        cubes=cubes_meta,
        training=training,
        wall_time_s=round(time.perf_counter() - start, 2),
        distributed=distributed,
        num_workers=num_workers if distributed and not is_self_training else 1,
    )
