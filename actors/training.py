"""Training as a Ray Train job (DDP, one worker per GPU) or in-process, both through the one engine.

:func:`train_distributed` runs :class:`slumwatch.models.engine.Engine` unchanged inside every Ray Train
worker: the model is wrapped by ``ray.train.torch.prepare_model`` (DDP with ``static_graph=True``: the
set of parameters a method uses must be the same every iteration, while several forward passes per
iteration and never-used heads such as ``proj_head`` are fine), loaders by
``ray.train.torch.prepare_data_loader`` (a ``DistributedSampler`` per loader, batches moved to the
worker's device). Rank 0 writes ``latest.pt`` / ``best.pt`` under ``run_dir / "engine"`` and reports
``latest.pt`` as a Ray checkpoint every epoch (stored under ``run_dir / "ray"``); when a worker dies,
``FailureConfig(max_failures)`` restarts the group and every worker resumes from that checkpoint.
Backend: NCCL on GPUs, gloo on CPU (so the tests run here).

:func:`train_local` is the single-process path (debugging, CPU demos): same datasets, same engine.

``dataset_builder`` is a picklable callable (module-level function or ``functools.partial``) returning
:class:`TrainDatasets` or a ``(train, val, unlabeled)`` tuple of torch ``Dataset`` objects; it runs in
each worker, so datasets are built where they are used.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from slumwatch.models import (
    Engine,
    EpochReport,
    TrainConfig,
    TrainResult,
    get_method,
    get_model,
    seed_everything,
)
from slumwatch.models.checkpoint import read_checkpoint
from slumwatch.models.engine import LATEST_NAME

LOGGER = logging.getLogger(__name__)

ENGINE_DIR = "engine"
RAY_DIR = "ray"
RAY_RUN_NAME = "ray"
DEFAULT_MAX_FAILURES = 2
CHECKPOINTS_TO_KEEP = 2
WINDOWED_VAL_BATCH = 1


@dataclass(frozen=True)
class TrainDatasets:
    """Datasets for one training run (samples as in :class:`slumwatch.models.data.TileDataset`)."""

    train: Dataset[Any]
    val: Dataset[Any] | None = None
    unlabeled: Dataset[Any] | None = None


DatasetBuilder = Callable[[], "TrainDatasets | tuple[Dataset[Any], Dataset[Any] | None, Dataset[Any] | None]"]


def _datasets(builder: DatasetBuilder) -> TrainDatasets:
    built = builder()
    if isinstance(built, TrainDatasets):
        return built
    train, val, unlabeled = built
    return TrainDatasets(train=train, val=val, unlabeled=unlabeled)


def build_loaders(
    datasets: TrainDatasets, config: TrainConfig, *, needs_unlabeled: bool
) -> tuple[DataLoader[Any], DataLoader[Any] | None, DataLoader[Any] | None]:
    """(train, val, unlabeled) loaders: shuffled training loaders (``drop_last``), ordered validation."""
    train = DataLoader(
        datasets.train,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=config.num_workers,
    )
    val = None
    if datasets.val is not None:
        val_batch = WINDOWED_VAL_BATCH if config.eval_window is not None else config.eval_batch_size
        val = DataLoader(datasets.val, batch_size=val_batch, shuffle=False, num_workers=config.num_workers)
    unlabeled = None
    if needs_unlabeled:
        if datasets.unlabeled is None:
            raise ValueError("the method needs unlabeled data but dataset_builder returned none")
        unlabeled = DataLoader(
            datasets.unlabeled,
            batch_size=config.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=config.num_workers,
        )
    return train, val, unlabeled


def train_local(
    *,
    config: TrainConfig,
    model_name: str,
    model_kwargs: Mapping[str, Any],
    method_name: str,
    method_kwargs: Mapping[str, Any],
    dataset_builder: DatasetBuilder,
    run_dir: Path,
    normalization: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    split_hash: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Single-process training (no Ray): build datasets, model and method, and run the engine."""
    seed_everything(config.seed)
    model = get_model(model_name, **model_kwargs)
    step = get_method(method_name, **method_kwargs)
    train, val, unlabeled = build_loaders(
        _datasets(dataset_builder), config, needs_unlabeled=step.needs_unlabeled
    )
    engine = Engine(
        config,
        model=model,
        step=step,
        run_dir=Path(run_dir),
        train_loader=train,
        val_loader=val,
        unlabeled_loader=unlabeled,
        progress=progress,
        normalization=normalization,
        metadata=metadata,
        split_hash=split_hash,
    )
    return engine.fit()


def _prepare_model(model: nn.Module) -> nn.Module:
    """DDP via Ray; ``static_graph`` tolerates unused heads and several forwards per iteration."""
    prepared: nn.Module = ray.train.torch.prepare_model(
        model, parallel_strategy="ddp", parallel_strategy_kwargs={"static_graph": True}
    )
    return prepared


def _report_epoch(report: EpochReport) -> None:
    """Report metrics on every rank; rank 0 attaches ``latest.pt`` as the Ray checkpoint."""
    metrics = {k: v for k, v in report.metrics.items() if v is not None}
    if report.latest_path is None:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="slumwatch-ckpt-") as staging:
        shutil.copy2(report.latest_path, Path(staging) / LATEST_NAME)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(staging))


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """Body of each Ray Train worker: same engine, DDP model, distributed loaders."""
    config: TrainConfig = loop_config["config"]
    seed_everything(config.seed)  # identical initialisation on every rank
    model = get_model(loop_config["model_name"], **loop_config["model_kwargs"])
    step = get_method(loop_config["method_name"], **loop_config["method_kwargs"])
    train, val, unlabeled = build_loaders(
        _datasets(loop_config["dataset_builder"]), config, needs_unlabeled=step.needs_unlabeled
    )
    train = ray.train.torch.prepare_data_loader(train)
    val = ray.train.torch.prepare_data_loader(val) if val is not None else None
    unlabeled = ray.train.torch.prepare_data_loader(unlabeled) if unlabeled is not None else None
    run_dir = Path(loop_config["run_dir"]) / ENGINE_DIR
    with tempfile.TemporaryDirectory(prefix="slumwatch-resume-") as resume_dir:
        resume_from = None
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as ckpt_dir:
                resume_from = Path(resume_dir) / LATEST_NAME
                shutil.copy2(Path(ckpt_dir) / LATEST_NAME, resume_from)
            LOGGER.info("rank %d resumes from the Ray checkpoint", ray.train.get_context().get_world_rank())
        engine = Engine(
            config,
            model=model,
            step=step,
            run_dir=run_dir,
            train_loader=train,
            val_loader=val,
            unlabeled_loader=unlabeled,
            progress=False,
            normalization=loop_config["normalization"],
            metadata=loop_config["metadata"],
            split_hash=loop_config["split_hash"],
            wrap_model=_prepare_model,
            device=ray.train.torch.get_device(),
            resume=resume_from is not None,
            resume_from=resume_from,
            on_epoch_end=_report_epoch,
        )
        engine.fit()


def _result_from_checkpoint(path: Path, run_dir: Path) -> TrainResult:
    raw = read_checkpoint(path)
    extra = raw["extra_state"]
    engine_dir = run_dir / ENGINE_DIR
    best = engine_dir / "best.pt"
    total_iters = int(raw.get("scheduler_state", {}).get("total_iters", extra["iteration"]))
    return TrainResult(
        run_dir=engine_dir,
        best_miou=extra["best_miou"],
        best_epoch=extra["best_epoch"],
        history=tuple(extra["history"]),
        latest_path=engine_dir / LATEST_NAME if (engine_dir / LATEST_NAME).is_file() else None,
        best_path=best if best.is_file() else None,
        iterations=int(extra["iteration"]),
        total_iters=total_iters,
        resumed_from_epoch=None,
    )


def train_distributed(
    *,
    config: TrainConfig,
    model_name: str,
    model_kwargs: Mapping[str, Any],
    method_name: str,
    method_kwargs: Mapping[str, Any],
    dataset_builder: DatasetBuilder,
    run_dir: Path,
    num_workers: int,
    use_gpu: bool,
    max_failures: int = DEFAULT_MAX_FAILURES,
    normalization: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    split_hash: str | None = None,
    cpus_per_worker: float = 1.0,
) -> TrainResult:
    """Data-parallel training with Ray Train's ``TorchTrainer``; returns the final :class:`TrainResult`.

    ``config.batch_size`` is per worker. Checkpoints: ``run_dir/engine/{latest,best}.pt`` (rank 0's
    node) and Ray's copies under ``run_dir/ray``. Uses the running Ray cluster, or starts a local one.
    """
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    loop_config = {
        "config": config,
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs),
        "method_name": method_name,
        "method_kwargs": dict(method_kwargs),
        "dataset_builder": dataset_builder,
        "run_dir": str(run_dir),
        "normalization": dict(normalization or {}),
        "metadata": dict(metadata or {}),
        "split_hash": split_hash,
    }
    resources = {"CPU": cpus_per_worker}
    trainer = ray.train.torch.TorchTrainer(
        _worker_loop,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=num_workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=RAY_RUN_NAME,
            storage_path=str(run_dir / RAY_DIR),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP),
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"distributed training failed: {result.error}") from result.error
    if result.checkpoint is None:
        raise RuntimeError("distributed training finished without a checkpoint")
    with result.checkpoint.as_directory() as ckpt_dir:
        return _result_from_checkpoint(Path(ckpt_dir) / LATEST_NAME, run_dir)


__all__ = ["DatasetBuilder", "TrainDatasets", "build_loaders", "train_distributed", "train_local"]
