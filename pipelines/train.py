"""The ``train`` flow: splits → training (any method, Ray) → evaluation → model registry.

The flow only orchestrates; each task calls one library function:

1. :func:`prepare_splits` — the given splits file of each cube, or ``catalogs.splits.make_splits`` saved
   to ``<out>/splits/``;
2. :func:`train_model` — ``actors.method_training.train_method_from_cube`` (resumes from ``latest.pt``
   when retried);
3. :func:`evaluate_model` — ``actors.evaluation.evaluate_checkpoint`` on the evaluation split of every
   cube (pooled confusion matrix when several), written to ``<out>/metrics.json``;
4. :func:`register_run` — ``actors.model_registry.register_model_run``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from slumwatch.actors.model_registry import ModelRunEntry
from slumwatch.training_config import SplitSettings, TrainRunConfig

__all__ = ["TRAIN_FLOW_NAME", "evaluate_model", "prepare_splits", "register_run", "train_flow", "train_model"]

TRAIN_FLOW_NAME = "train"
TASK_RETRIES = 2
TRAIN_RETRIES = 1
TASK_RETRY_DELAY_S = 2
SPLITS_DIR = "splits"
METRICS_FILE = "metrics.json"
TRAINING_FILE = "training.json"
MODEL_DIR = "model"


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def prepare_splits(*, cube: Path, splits: Path | None, settings: SplitSettings, out: Path) -> Path:
    """The cube's splits: ``splits`` as given (hash-checked), or new stratified splits saved to ``out``."""
    from slumwatch.catalogs.cube import CubeRef
    from slumwatch.catalogs.splits import SplitSpec, load_splits, make_splits
    from slumwatch.catalogs.tiling import TileSpec

    if splits is not None:
        load_splits(splits)  # verifies the hash
        return splits
    spec = SplitSpec(
        train=settings.train,
        val=settings.val,
        test=settings.test,
        fractions=settings.fractions,
        seed=settings.seed,
        min_labelled=settings.min_labelled,
        block=settings.block,
    )
    tile = TileSpec(settings.tile_size) if settings.tile_size else None
    made = make_splits(cube=CubeRef(path=cube), tile=tile, spec=spec)
    path = made.save(out)
    get_run_logger().info(
        "splits of %s: %d train / %d val / %d test tiles -> %s",
        cube,
        len(made.train),
        len(made.val),
        len(made.test),
        path,
    )
    return path


@task(retries=TRAIN_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def train_model(*, cfg: TrainRunConfig, splits: list[Path]) -> dict[str, Any]:
    """Train the configured method; returns ``MethodRunResult.to_dict()`` (also in ``training.json``)."""
    from slumwatch.actors.method_training import DataOptions, train_method_from_cube
    from slumwatch.models.engine import TrainConfig

    train_config = TrainConfig(
        epochs=cfg.epochs,
        max_iters=cfg.max_iters,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        optimizer=cfg.optimizer,
        weight_decay=cfg.weight_decay,
        head_lr_multiplier=cfg.head_lr_multiplier,
        amp=cfg.amp,
        seed=cfg.seed,
        val_every=cfg.val_every,
        checkpoint_every=cfg.checkpoint_every,
        eval_window=cfg.eval_window,
        device=cfg.device,
        num_workers=cfg.loader_workers,
    )
    data = DataOptions(
        crop_size=cfg.crop_size,
        scale_range=cfg.scale_range,
        years=cfg.years,
        tile_size=cfg.split.tile_size,
    )
    result = train_method_from_cube(
        cube=list(cfg.cubes),
        splits=splits,
        method=cfg.method,
        budget=cfg.budget,
        model_name=cfg.model,
        train_config=train_config,
        run_dir=cfg.out / MODEL_DIR,
        num_workers=cfg.num_workers,
        use_gpu=cfg.use_gpu,
        method_kwargs=cfg.method_kwargs(),
        model_kwargs=cfg.model_options,
        distributed=cfg.distributed,
        data=data,
    )
    summary = result.to_dict()
    _write_json(cfg.out / TRAINING_FILE, summary)
    get_run_logger().info("trained %s in %.1f s -> %s", cfg.method, result.wall_time_s, result.checkpoint)
    return summary


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def evaluate_model(
    *,
    checkpoint: Path,
    cubes: list[Path],
    splits: list[Path],
    split: str,
    years: tuple[int, ...] | None,
    sliding_window: int | None,
    device: str,
    out: Path,
) -> dict[str, Any]:
    """Scores on ``split`` of every cube (pooled when several); written to ``out``."""
    from slumwatch.actors.evaluation import evaluate_checkpoint, pool_results

    results = [
        evaluate_checkpoint(
            checkpoint=checkpoint,
            cube=cube,
            splits=split_path,
            split=split,
            years=years,
            sliding_window=sliding_window,
            device=device,
        )
        for cube, split_path in zip(cubes, splits, strict=True)
    ]
    metrics = results[0] if len(results) == 1 else pool_results(results)
    _write_json(out, metrics)
    get_run_logger().info("%s mIoU %s (per class %s)", split, metrics["miou"], metrics["iou_per_class"])
    return metrics


@task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_S)
def register_run(*, cfg: TrainRunConfig, training: dict[str, Any], metrics: dict[str, Any]) -> ModelRunEntry:
    """Add the run to the model registry; returns the :class:`ModelRunEntry`."""
    from slumwatch.actors.model_registry import register_model_run

    return register_model_run(
        registry_dir=cfg.registry_dir,
        run_id=cfg.run_id,
        method=cfg.method,
        model_name=cfg.model,
        checkpoint=Path(training["checkpoint"]),
        label_budget=cfg.budget,
        split_sha256=training["split_sha256"],
        train_config=training["train_config"],
        method_kwargs=training["method_kwargs"],
        model_kwargs=training["model_kwargs"],
        training_data=[
            {
                "path": c["path"],
                "city": c["city"],
                "years": c["years_used"],
                "item_ids": c["item_ids"],
            }
            for c in training["cubes"]
        ],
        metrics=metrics,
        bands=training["normalization"].get("bands", ()),
        normalization=training["normalization"],
        extra={
            "run_dir": str(cfg.out),
            "samples": training["samples"],
            "wall_time_s": training["wall_time_s"],
            "distributed": training["distributed"],
            "num_workers": training["num_workers"],
            "best_val_miou": training["best_miou"],
            "crop_size": cfg.crop_size,
        },
    )


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


@flow(name=TRAIN_FLOW_NAME, log_prints=True)
def train_flow(cfg: TrainRunConfig) -> ModelRunEntry:
    """Train, evaluate and register one model; returns its registry entry (``ModelRunEntry``)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    given = cfg.splits or (None,) * len(cfg.cubes)
    splits = [
        prepare_splits(
            cube=cube,
            splits=split,
            settings=cfg.split,
            out=cfg.out / SPLITS_DIR / f"{i:02d}_{cube.stem}.json",
        )
        for i, (cube, split) in enumerate(zip(cfg.cubes, given, strict=True))
    ]
    training = train_model(cfg=cfg, splits=splits)
    metrics = evaluate_model(
        checkpoint=Path(training["checkpoint"]),
        cubes=list(cfg.cubes),
        splits=splits,
        split=cfg.eval_split,
        years=cfg.years,
        sliding_window=cfg.eval_window,
        device=cfg.device,
        out=cfg.out / METRICS_FILE,
    )
    return register_run(cfg=cfg, training=training, metrics=metrics)
